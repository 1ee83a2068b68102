"""The integration suite, a package so that its modules import each other by name.

``integration.support`` holds the services the tests and the benches start
(the Temporal dev server, OpenBao, moto_server, the GCP fakes), free ports,
process management and runtime quieting. pytest finds the package through
``pythonpath = ["."]`` (pyproject.toml); the benches run as modules from the
repository root (``python -m bench.bench_activity``).
"""
