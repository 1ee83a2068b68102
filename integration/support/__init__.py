"""Test support shared by ``integration/`` and ``bench/``: real services on loopback, started here.

* :mod:`integration.support.procs`: free ports, readiness, processes stopped by
  PID, Python programs started as modules, a bench's quick run;
* :mod:`integration.support.temporal`: the Temporal dev server and a quiet runtime;
* :mod:`integration.support.vault`: OpenBao (``bao server -dev``);
* :mod:`integration.support.aws`: ``moto_server``;
* :mod:`integration.support.gcp`, :mod:`integration.support.gcp_kms`: the
  fixtures of the loopback GCP fakes (``gcp_sm_server``, ``gcp_kms_server``,
  built on ``grpc_test_server`` and ``grpc_servers``);
* :mod:`integration.support.hostile`: misbehaving HTTP servers;
* :mod:`integration.support.gate`: a loopback forwarder that can refuse connections;
* :mod:`integration.support.remote_signers`: one adapter per remote signer
  (Transit, Cloud KMS) for the remote-signer Temporal suite;
* :mod:`integration.support.signer_checks`: warrants, acceptance and latency
  for the remote signers' own tests;
* :mod:`integration.support.resolver_checks`: outage polling for the resolver
  backends' tests;
* :mod:`integration.support.temporal_helpers`: clients, workers and history helpers.

Not shipped: ``[tool.setuptools.packages.find]`` includes only the two libraries.
"""
