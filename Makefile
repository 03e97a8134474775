# Every target creates the environment (.venv, from uv.lock) if it is missing.
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
VENV := .venv
RUN := $(VENV)/bin
PIPELINE ?= pipelines/demo.toml
# The suite keeps its own and pytest's rewritten bytecode between runs (__pycache__ is ignored by git).
TESTENV := env -u PYTHONDONTWRITEBYTECODE

.PHONY: help setup demo shards status test test-fast bench device-wheels lint clean realdata realdata-table serve

help:  ## List the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(UV):
	python3 -m pip install --quiet --user uv || python3 -m pip install --quiet uv

# Bytecode compiled at install: where PYTHONDONTWRITEBYTECODE is set (containers, this CI) every process would
# otherwise compile torch's sources again, about 10 s a process on 2 cores.
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode
	touch $@

setup: $(VENV)/.synced  ## Create the environment from uv.lock

demo: setup  ## The whole pipeline on the embedded sample (CPU, minutes); prints where the report is
	$(RUN)/onepunch run --pipeline $(PIPELINE)

shards: setup  ## Build shards for PIPELINE (default: the embedded sample)
	$(RUN)/onepunch shards --pipeline $(PIPELINE)

status: setup  ## Show which stages are done, stale or missing
	$(RUN)/onepunch status --pipeline $(PIPELINE)

test: setup  ## Run the whole test suite (what CI runs)
	$(TESTENV) $(RUN)/pytest --durations=15

test-fast: setup  ## The inner-loop tier: everything not marked slow
	$(TESTENV) $(RUN)/pytest -m "not slow"

REALDATA_SETS ?= fluent emojione openmoji iconpark

realdata: setup  ## Real (scan, color) pairs from npm icon and emoji sets into data/realdata/ (needs npm, node and rsvg-convert or CairoSVG)
	$(RUN)/python scripts/realdata.py

realdata-table: realdata  ## Train the realdata pipelines (tiny, CPU, about an hour a set) and eval on the real pairs
	set -e; for s in $(REALDATA_SETS); do \
	  for p in realdata-$$s realdata-$$s-xdog; do \
	    $(RUN)/onepunch shards -p pipelines/realdata/$$p.toml; done; \
	  $(RUN)/onepunch train-scan -p pipelines/realdata/realdata-$$s.toml; \
	  for p in realdata-$$s realdata-$$s-xdog realdata-$$s-oracle; do \
	    $(RUN)/onepunch build-pairs -p pipelines/realdata/$$p.toml; $(RUN)/onepunch train-color -p pipelines/realdata/$$p.toml; done; \
	  $(RUN)/onepunch eval -p pipelines/realdata/realdata-$$s.toml; done; \
	$(RUN)/python scripts/realdata_table.py --summary $(REALDATA_SETS); $(RUN)/python scripts/realdata_table.py $(REALDATA_SETS); \
	$(RUN)/python scripts/realdata_table.py --grids $(REALDATA_SETS)

serve: setup  ## The web app on http://127.0.0.1:7860 with CKPT (default: the demo's colorizer)
	$(RUN)/onepunch serve --ckpt $(or $(CKPT),runs/demo/train-color/color.pt)

# Issue 28's GPU rows in one device call: `make device-wheels` here (the packages the device image lacks, as wheels
# in .whl/), then run `bash bench/device.sh` with the device tool, carrying .whl (see the script's header).
device-wheels:  ## Wheels the GPU machine lacks (webdataset), for bench/device.sh
	python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl webdataset==1.0.2 braceexpand==0.1.7

# Every stage's benchmark, one after another (never two torch processes at once): with CUDA the GPU-sized settings of
# BENCHMARKS.md, on CPU small ones (minutes). Results go to BENCHMARKS.md by hand.
bench: setup  ## Run every stage's benchmark (CPU: minutes; CUDA when present); results go to BENCHMARKS.md by hand
	set -e; if $(RUN)/python -c "import sys, torch; sys.exit(not torch.cuda.is_available())"; then \
	  $(RUN)/python bench/bench_shards.py; \
	  $(RUN)/python bench/bench_train_scan.py --device cuda --batch 8 --steps 30 --workers 8 --max-batch; \
	  $(RUN)/python bench/bench_train_color.py --device cuda --batch 64 --steps 20 --sizes 64,128,256 \
	    --compile-sizes 256 --workers 12 --max-batch; \
	  $(RUN)/python bench/bench_build_pairs.py --device cuda --images 4096 --batch 256 --workers 8 --shard-workers 12; \
	  $(RUN)/python bench/bench_colorize.py --device cuda --pages 16 --batch 8; \
	else \
	  $(RUN)/python bench/bench_shards.py --images 400; \
	  $(RUN)/python bench/bench_train_scan.py --preset tiny --size 64 --steps 4; \
	  $(RUN)/python bench/bench_train_color.py --preset tiny --batch 4 --steps 2 --sizes 64,128 --workers 2; \
	  $(RUN)/python bench/bench_build_pairs.py --images 48; \
	  $(RUN)/python bench/bench_colorize.py --presets tiny --repeats 2 --pages 4; \
	fi

lint: setup  ## Lint with ruff
	$(RUN)/ruff check onepunch tests bench

clean:  ## Remove generated data, runs and manifests (keeps the environment)
	rm -rf data runs manifests/*/ bench/out
