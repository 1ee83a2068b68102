"""Built-in resolvers, one module per backend.

Cloud backends import their client libraries only when used; ``tenuo_keys``
exports every class lazily, so a missing extra fails with an install hint.
"""
