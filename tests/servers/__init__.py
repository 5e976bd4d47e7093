"""Local servers the tests, the demo and the benchmark start on 127.0.0.1.

- ``base``: threaded HTTP/1.1 server with keep-alive, TCP_NODELAY, latency and fault injection.
- ``rs_source``: a ResourceSync source built from fixture data (``fixtures``).
- ``sword_server``: a filesystem-backed SWORD v2 server.
"""
