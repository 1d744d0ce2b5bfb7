# The only way to run things. `make run` and `make test` each do all set-up on a new machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export AWS_DEFAULT_REGION ?= us-east-1
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true

.PHONY: setup run wipe test lint bench build synth deploy clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)  ## start the whole pipeline on loopback (moto + local API Gateway + Kinesis poller + scheduler)
	$(BIN)/python -m local

wipe: $(STAMP)  ## delete the local stack's saved data (.local/state); the admin token is kept
	$(BIN)/python -m local --wipe

test: $(STAMP)  ## lint + types + the whole suite (unit, integration, infra, contract, e2e)
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache  # layering contracts in pyproject.toml; no cache: it can go stale
	$(BIN)/mypy  # strict on shared/ ([tool.mypy] in pyproject.toml)
	$(BIN)/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(STAMP)  ## throughput and key-design figures (prints ratios)
	$(BIN)/python -m bench

build: $(STAMP)  ## one Lambda code asset per function, x86_64 (pip manylinux wheels, no Docker)
	$(BIN)/python -m infra.packaging

synth: $(STAMP)  ## cdk.json runs the asset build first
	npx --yes aws-cdk@2.1148.1 synth --no-notices

deploy: $(STAMP)
	npx --yes aws-cdk@2.1148.1 deploy --no-notices

clean:
	rm -rf $(VENV) .build cdk.out .local
