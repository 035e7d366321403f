# metaflow-dagster developer entry points. `make demo` and `make test` are all you need.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test unit bench bench-scale clean

venv: $(STAMP)

# Re-install only when the requirements change (the package itself is editable).
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# This project was distributed as metaflow-dagster before (now another project's name).
	$(BIN)/python -m pip uninstall -q -y metaflow-dagster 2>/dev/null || true
	$(BIN)/python -m pip install -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: venv
	scripts/demo.sh

# The whole suite, all three tiers (about 17 minutes on 2 cores; README, "Quick start").
test: venv
	export METAFLOW_USER=$${METAFLOW_USER:-ci}; \
	$(BIN)/python -m ruff check . && \
	$(BIN)/python -m pytest -n 2 --dist loadgroup --durations=30 tests

# The fast tier alone: in memory, no subprocess, seconds.
unit: venv
	export METAFLOW_USER=$${METAFLOW_USER:-ci}; \
	$(BIN)/python -m pytest -q tests/unit

bench: venv
	$(BIN)/python bench/run.py

# The scale table of bench/README.md: a foreach of 10,000 on SQLite and PostgreSQL against
# `flow.py run`, 50 runs at once, the run page at width, trigger --wait, linear6 (~1.5 hours;
# on a quiet machine).
bench-scale: venv
	$(BIN)/python bench/scale.py --widths 10000 --runs 1
	$(BIN)/python bench/concurrency.py --runs 50 --max-concurrent-runs 8
	$(BIN)/python bench/ui_width.py --width 1000 --loads 3
	$(BIN)/python bench/trigger_latency.py --runs 10
	$(BIN)/python bench/run.py --flows linear6 --runs 5

# Removes generated and run-time state; keeps the virtualenv (rm -rf .venv for that).
clean:
	rm -rf build .dagster_home .tmp_dagster_home_* .pytest_cache .ruff_cache bench/results
	find . -path ./$(VENV) -prune -o -type d \( -name .metaflow -o -name __pycache__ \) \
		-prune -exec rm -rf {} +
	find examples tests -name '*_dagster.py' ! -name 'test_*' -delete
