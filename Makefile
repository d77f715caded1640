# kasten-bp: every target installs what it needs first (idempotent, quick when done).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LAB ?= $(CURDIR)/.lab/demo
CONFIG ?= kasten-bp.yaml
BACKUP_ID ?=
CLUSTER ?= my-cluster
NAMESPACE ?= kafka
PLATFORM ?= strimzi
PYTEST_ARGS ?=
# Two pytest-xdist workers, each with its own lab: half of a lab's time is waiting (broker
# sessions, MM2 polls), which the other worker fills. `make test TEST_WORKERS=0` runs serially.
TEST_WORKERS ?= 2

.PHONY: install core check-tools jars minio blueprint lint test test-unit test-integration demo bench clean backup verify kube-env

install: core minio kube-env

# What the product itself needs: the venv and the Kafka jars.
core: check-tools $(BIN)/.installed jars

check-tools:
	@command -v java >/dev/null || { echo "error: java not found: install a JDK >= 17 (apt-get install openjdk-17-jdk)"; exit 2; }
	@command -v mvn >/dev/null || { echo "error: mvn not found: install Apache Maven (apt-get install maven)"; exit 2; }
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found: install Python >= 3.11"; exit 2; }

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

jars: $(BIN)/.installed
	@$(BIN)/python -m kasten_bp.lab.jars >/dev/null && echo "Kafka jars ready"
	@$(BIN)/python -m kasten_bp.lab.class_archive

# Test servers built from the Go module proxy, cached under ~/.cache/kasten-bp.
minio:
	@scripts/minio-test-env build

kube-env:
	@scripts/kube-test-env build

lint: $(BIN)/.installed
	$(BIN)/ruff check kasten_bp tests scripts
	$(BIN)/ruff format --check kasten_bp tests
	$(BIN)/mypy
	$(BIN)/lint-imports

test: install lint
	$(BIN)/pytest tests -n $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

test-unit: $(BIN)/.installed
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

demo: core
	$(BIN)/python scripts/demo.py --workdir $(LAB)

# Replay against a kcat pipe starts a lab of its own (scripts/bench_replay.py).
REPLAY_RECORDS ?= 1000000

bench: core
	$(BIN)/python scripts/bench.py
	$(BIN)/python scripts/bench_replay.py --records $(REPLAY_RECORDS)

backup: core
	$(BIN)/kasten-bp backup --config $(CONFIG)

verify: core
	$(BIN)/kasten-bp verify $(BACKUP_ID) --config $(CONFIG)

blueprint: core
	$(BIN)/kasten-bp blueprint render --cluster $(CLUSTER) --namespace $(NAMESPACE) --platform $(PLATFORM)

clean:
	-[ -d $(LAB) ] && $(BIN)/kasten-bp lab down --workdir $(LAB)
	rm -rf .lab .pytest_cache .mypy_cache .ruff_cache
