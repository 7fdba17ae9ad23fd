"""Local tooling for `make run` and the tests: the demo corpus and a private redis-server."""
