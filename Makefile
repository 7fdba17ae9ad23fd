# newsfeed: `make run` starts the service with demo data, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test lint bench quality simulate fuzz soak clean

help:  ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)  ## create the venv and install the project with its dev tools

run: $(STAMP)  ## serve on localhost with an embedded Redis, a jobs worker and a demo corpus
	$(BIN)/newsfeed serve --demo

test: $(STAMP)  ## run the whole test suite (starts its own throwaway redis-server)
	$(BIN)/pytest

lint: $(STAMP)  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP)  ## measure throughput and latency; prints a report
	$(BIN)/python -m bench

quality: $(STAMP)  ## ranking quality on real news (AG News from ../shared/data): a report
	$(BIN)/python -m bench.quality

simulate: $(STAMP)  ## simulated readers on the API: learned vs tfidf offline, then an A/B test
	$(BIN)/python -m bench.simulate

fuzz: $(STAMP)  ## schemathesis, hostile JSON and forged tokens with many more examples than make test
	NEWSFEED_FUZZ_EXAMPLES=500 $(BIN)/pytest tests/test_fuzz.py tests/test_hostile_json.py tests/test_token_headers.py -p no:cacheprovider

soak: $(STAMP)  ## mixed traffic through a Redis restart, a Redis freeze and a worker kill; prints a report
	$(BIN)/python -m bench.soak

clean:  ## remove the venv and local data
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
