# Every target creates the environment (.venv, from uv.lock) if it is missing.
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv
RUN := $(VENV)/bin
PIPELINE ?= pipelines/demo.toml

.PHONY: help setup demo shards status test bench lint clean

help:  ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(UV):
	python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	touch $@

setup: $(VENV)/.synced  ## Create the environment from uv.lock

demo: setup  ## The whole pipeline on the embedded sample (CPU, minutes); prints where the report is
	$(RUN)/onepunch run --pipeline $(PIPELINE)

shards: setup  ## Build shards for PIPELINE (default: the embedded sample)
	$(RUN)/onepunch shards --pipeline $(PIPELINE)

status: setup  ## Show which stages are done, stale or missing
	$(RUN)/onepunch status --pipeline $(PIPELINE)

test: setup  ## Run the test suite (fast tier; what CI runs)
	$(RUN)/pytest

bench: setup  ## Run the benchmarks (results go to BENCHMARKS.md by hand)
	$(RUN)/python bench/bench_shards.py

lint: setup  ## Lint with ruff
	$(RUN)/ruff check onepunch tests bench

clean:  ## Remove generated data, runs and manifests (keeps the environment)
	rm -rf data runs manifests/*/ bench/out
