# Sluicegate: `make demo` and `make test` are all a newcomer needs (see README.md).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: help install jars browser up down status test test-unit test-integration demo lint bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required ($(PYTHON) is $$($(PYTHON) -V))"; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@echo "install: Python dependencies into $(VENV)/ ..."
	@$(VENV)/bin/pip install -q --upgrade pip
	@$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv/ and install Sluicegate with its dependencies

browser: ## Install Debian's chromium and chromium-driver (the console's tests, the demo's screenshot)
	@bash stack/browser.sh

jars: ## Fetch Kafka, Connect and Debezium jars from Maven Central (cached outside the clone)
	@bash stack/fetch-jars.sh

up: install ## Start PostgreSQL, Kafka and Kafka Connect + Debezium; wait until each answers
	@bash stack/up.sh

down: ## Stop exactly what `make up` started
	@bash stack/down.sh

status: ## Show each part of the local stack
	@bash stack/status.sh

test: install browser ## Install everything, start the stack, run the unit and integration tiers, stop what it started
	@bash stack/with-stack.sh $(VENV)/bin/pytest -p no:cacheprovider tests

test-unit: install ## Unit tier only (no processes)
	@$(VENV)/bin/pytest -p no:cacheprovider tests/unit

test-integration: install browser ## Integration tier against a running stack (`make up` first)
	@$(VENV)/bin/pytest -p no:cacheprovider tests/integration

demo: install browser ## Set up everything and run the end-to-end demo
	@bash stack/with-stack.sh $(VENV)/bin/sluicegate demo

lint: install ## ruff (lint and format check) and mypy
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/mypy

bench: install ## Run the benchmarks in bench/ against the running stack
	@for b in bench/*.py; do echo "== $$b"; $(VENV)/bin/python $$b || exit 1; done

clean: down ## Stop the stack and delete run-time state (not the download caches)
	@SLUICEGATE_WIPE=1 bash stack/down.sh >/dev/null
	@rm -rf .run .sluicegate
