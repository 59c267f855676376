# jointuse: two commands do everything on a fresh machine: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
NODES ?= 1
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Tools fetched into .local/bin (Prometheus, promtool) come first, so tests use the pinned ones.
export PATH := $(CURDIR)/.local/bin:$(PATH)

.PHONY: setup prereqs tools lint docs typecheck unit test test-cluster test-kafka infra-up infra-down infra-logs infra-status infra-reset demo up down bench clean

# Stops at once, one line per missing prerequisite and the command that installs it.
prereqs:
	@infra/tools.sh check

# Kafka and the registry (Maven Central), Prometheus and promtool (Go module proxy), the AsyncAPI parser (npm).
tools: prereqs
	@infra/local.sh fetch
	@infra/tools.sh fetch

setup: prereqs $(STAMP) tools

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "[setup] installing the Python packages into $(VENV) (pinned by constraints.txt)"
	@$(BIN)/pip install -q --upgrade pip
	@# PYTHONWARNINGS: setuptools warns about every editable install; it says nothing about ours.
	@PYTHONWARNINGS=ignore $(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

lint: setup
	$(BIN)/ruff check streams tests bench
	$(BIN)/mypy

# The documentation site (mkdocs.yml) into .local/site: a broken link or anchor, or a page missing
# from the nav, fails it. Quiet unless it fails; it needs the Python packages only, no service.
docs: $(STAMP)
	@out=$$($(BIN)/mkdocs build --strict --site-dir .local/site 2>&1) || { echo "$$out"; exit 1; }

infra-up:
	JOINTUSE_KAFKA_NODES=$(NODES) infra/local.sh up

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

# The tests without services run on both cores, then those with the broker one at a time (they
# start workers, kill and pause them), the slowest named at the end. Of the three-node fault tests,
# one per runtime runs here; `make test-cluster` runs all of them.
UNIT_ARGS ?= -m unit -n 2
PYTEST_ARGS ?= -m "kafka and not cluster_full" --durations=15

# lint + docs + infra up + every test + infra down (also when tests fail); the exit code is pytest's
# (the first run's that failed).
test: lint docs
	@JOINTUSE_KAFKA_NODES=$(NODES) infra/local.sh up
	@status=0; eval "$$(infra/local.sh env)"; \
	  $(BIN)/pytest -q $(UNIT_ARGS) || status=$$?; \
	  $(BIN)/pytest -q $(PYTEST_ARGS) || { failed=$$?; [ $$status -ne 0 ] || status=$$failed; }; \
	  infra/local.sh down; exit $$status

# The faults of a three-node cluster on both runtimes (nodes killed in turn, the quorum lost).
test-cluster: setup
	@JOINTUSE_KAFKA_NODES=1 infra/local.sh up
	@status=0; eval "$$(infra/local.sh env)"; $(BIN)/pytest -q -m cluster -rA || status=$$?; infra/local.sh down; exit $$status

# KEEP=1 leaves the broker, the registry and the demo's workers running to explore; `make down` stops them.
demo: setup
	@JOINTUSE_KAFKA_NODES=$(NODES) infra/local.sh up
	@status=0; eval "$$(infra/local.sh env)"; \
	if [ -n "$(KEEP)" ]; then $(BIN)/jointuse demo --keep $(DEMO_ARGS) || status=$$?; \
	else $(BIN)/jointuse demo $(DEMO_ARGS) || status=$$?; infra/local.sh down; fi; exit $$status

# The broker and the registry, left running (`make down` stops them and any worker the demo left).
# NODES=3: three KRaft nodes, every topic at replication 3 with 2 in sync.
up: setup
	@JOINTUSE_KAFKA_NODES=$(NODES) infra/local.sh up

down:
	@$(BIN)/jointuse demo --stop 2>/dev/null || true
	@infra/local.sh down

# The Quix Streams peer needs older confluent-kafka and pydantic: its own venv.
PEER := .venv-peer
$(PEER)/.installed: bench/peer-constraints.txt
	@test -x $(PEER)/bin/python || $(PYTHON) -m venv $(PEER)
	$(PEER)/bin/pip install -q -r bench/peer-constraints.txt
	@touch $@

bench: setup $(PEER)/.installed
	@JOINTUSE_KAFKA_NODES=$(NODES) infra/local.sh up
	@status=0; eval "$$(infra/local.sh env)"; $(BIN)/python -m bench.run $(BENCH_ARGS) || status=$$?; infra/local.sh down; exit $$status

clean:
	infra/local.sh down
	rm -rf $(VENV) $(PEER) .local .pytest_cache .mypy_cache .ruff_cache
