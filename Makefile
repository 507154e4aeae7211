# Contributor commands for Dashify. `make` alone lists them.
#
# Everything runs from the virtualenv in .venv, which `make venv` creates and
# keeps in step with the requirements files. Redis comes from
# scripts/with_redis.py: a private server per command unless REDIS_URL names
# one already.

.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

PYTHON3 ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
WITH_REDIS := $(PYTHON) scripts/with_redis.py

PORT ?= 8000
PYTEST_ARGS ?=

.PHONY: help venv run test style clean

help: ## List the targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-z-]+:.*## / { printf "  make %-11s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

venv: $(INSTALLED) ## Create .venv and install requirements-dev.txt when they change

$(PYTHON):
	$(PYTHON3) -m venv $(VENV)

# The stamp, not the interpreter, tracks the install: a failed install leaves
# it stale, so the next run tries again.
$(INSTALLED): requirements.txt requirements-dev.txt | $(PYTHON)
	$(PYTHON) -m pip install -r requirements-dev.txt
	touch $@

# Settings keep DEBUG off unless told otherwise; this is the one place that
# tells them, and PORT keeps the default allowed origins in step with daphne.
run: export DJANGO_DEBUG ?= 1
run: export PORT := $(PORT)
# scripts/run_dev.py migrates, seeds the demo data, then runs daphne, the job
# worker and the scheduler, and stops them all when one ends or on Ctrl-C.
run: venv ## Serve on 127.0.0.1:PORT (default 8000) with a persistent Redis in var/redis
	$(WITH_REDIS) --persist --data-dir var/redis -- $(PYTHON) scripts/run_dev.py

test: venv ## Lint, check formatting and types, then run pytest (PYTEST_ARGS=... to narrow)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .
	$(WITH_REDIS) --data-dir var/test-redis -- $(VENV)/bin/pytest $(PYTEST_ARGS)

style: venv ## Format, apply lint fixes, then type-check with mypy
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/mypy .

clean: ## Remove var/ (dev database, Redis data), caches and __pycache__; keeps .venv
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +

include bench/bench.mk
