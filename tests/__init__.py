"""The unit tests; a package so that their shared helpers import by name (``tests._warrants``)."""
