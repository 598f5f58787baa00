# Watercooler — the two commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)
PYTEST_ARGS ?=
# `make run` keeps its data in the checkout (git-ignored); `make test` uses .test-data/.
RUN_DATA_DIR ?= $(CURDIR)/.data

.PHONY: help preflight install protos run run-cluster test test-faults test-unit test-integration test-cluster lint bench infra-up infra-down infra-status infra-fetch k8s-validate clean

help:
	@echo "make run          start Kafka, Elasticsearch, every service and processor; seed a demo; Ctrl-C stops"
	@echo "make run-cluster  the same in the production topology: replicas on PostgreSQL, 3 brokers, 2 search nodes"
	@echo "make test         install, start the infrastructure, run the suite (all but faults and cluster), stop it"
	@echo "make test-faults  the fault suite: processes killed, Kafka and Elasticsearch stopped under load"
	@echo "make lint         lint the protos (buf), the Python (ruff) and its layering (import-linter)"
	@echo "make bench        benchmarks against the raw limits of the parts (not part of make test)"
	@echo "make infra-up|infra-down|infra-status   the local Kafka and Elasticsearch processes"

# Fails at once, naming what to install, when the machine lacks what no script can fetch.
preflight:
	@PYTHON=$(PYTHON) bash scripts/preflight.sh

$(STAMP): pyproject.toml requirements.lock scripts/bootstrap.sh
	@PYTHON=$(PYTHON) VENV=$(VENV) bash scripts/bootstrap.sh
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: preflight $(STAMP) protos

# Generated code is never committed nor hand-edited; regenerating takes a second.
protos: $(STAMP)
	@$(PY) scripts/gen_protos.py

run: install
	WC_DATA_DIR=$${WC_DATA_DIR:-$(RUN_DATA_DIR)} $(PY) -m tools.cli run

# The cluster topology (tools/cluster.py); `WC_TOPOLOGY=cluster make run` is the same.
run-cluster: install
	WC_DATA_DIR=$${WC_DATA_DIR:-$(RUN_DATA_DIR)} WC_TOPOLOGY=cluster $(PY) -m tools.cli run

# The whole suite but the fault suite and the cluster topology's (make test-faults and make
# test-cluster, which .ci/run runs after this): together they exceed the 20 minutes one target
# may take on 2 cores.
test: install
	$(PY) -m pytest --ignore=tests/cluster -m "not faults" $(PYTEST_ARGS)

# The fault suite (tests/integration/test_faults.py): every process SIGKILLed under load, Kafka
# restarted, Elasticsearch stopped for 60 s and answering 429, a broker of three killed.
test-faults: install
	$(PY) -m pytest tests/integration/test_faults.py $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

# The tests against the cluster topology (replicas on PostgreSQL, three brokers, two search nodes).
test-cluster: install
	$(PY) -m pytest tests/cluster $(PYTEST_ARGS)

lint: install
	@bash scripts/lint.sh

# Render deploy/k8s with kustomize and validate it (schemas, operators' CRDs, policies); the
# tools and CRDs are fetched into $(WC_CACHE_DIR or ~/.cache/watercooler). Also part of `make test`.
k8s-validate: install
	$(PY) -m tools.k8s.fetch
	$(PY) -m pytest tests/k8s $(PYTEST_ARGS)

bench: install
	$(PY) -m benchmarks $(BENCH_ARGS)

infra-up: install
	WC_DATA_DIR=$${WC_DATA_DIR:-$(RUN_DATA_DIR)} $(PY) -m tools.infra up

infra-down: install
	WC_DATA_DIR=$${WC_DATA_DIR:-$(RUN_DATA_DIR)} $(PY) -m tools.infra down

infra-status: install
	WC_DATA_DIR=$${WC_DATA_DIR:-$(RUN_DATA_DIR)} $(PY) -m tools.infra status

infra-fetch: install
	WC_DATA_DIR=$${WC_DATA_DIR:-$(RUN_DATA_DIR)} $(PY) -m tools.infra fetch

clean:
	rm -rf $(VENV) .pytest_cache .test-data test-artifacts
	find libs/watercooler -path '*/v1/*_pb2*' -delete
