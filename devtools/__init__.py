"""Local tooling for `make run` and the tests: demo corpus, private redis-server, MIND sample."""
