# jointuse: two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup lint typecheck unit test test-kafka infra-up infra-down infra-logs infra-status infra-reset demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

lint: setup
	$(BIN)/ruff check streams tests bench
	$(BIN)/mypy

infra-up:
	infra/local.sh up

infra-down:
	infra/local.sh down

infra-logs:
	infra/local.sh logs

infra-status:
	infra/local.sh status

infra-reset:
	infra/local.sh reset

# Unit tests only: no broker, no registry.
unit: setup
	$(BIN)/pytest -m unit -q

# lint + infra up + every test + infra down (also when tests fail); the exit code is pytest's.
test: lint
	@infra/local.sh up
	@status=0; eval "$$(infra/local.sh env)"; $(BIN)/pytest -q $(PYTEST_ARGS) || status=$$?; infra/local.sh down; exit $$status

demo: setup
	@infra/local.sh up
	@status=0; eval "$$(infra/local.sh env)"; $(BIN)/jointuse demo $(DEMO_ARGS) || status=$$?; infra/local.sh down; exit $$status

# The Quix Streams peer needs older confluent-kafka and pydantic: its own venv.
PEER := .venv-peer
$(PEER)/.installed: bench/peer-constraints.txt
	@test -x $(PEER)/bin/python || $(PYTHON) -m venv $(PEER)
	$(PEER)/bin/pip install -q -r bench/peer-constraints.txt
	@touch $@

bench: setup $(PEER)/.installed
	@infra/local.sh up
	@status=0; eval "$$(infra/local.sh env)"; $(BIN)/python -m bench.run $(BENCH_ARGS) || status=$$?; infra/local.sh down; exit $$status

clean:
	infra/local.sh down
	rm -rf $(VENV) $(PEER) .local .pytest_cache .mypy_cache .ruff_cache
