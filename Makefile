# Two commands do all set-up on a fresh Debian/Ubuntu machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint check venv system-run system-test clean demo

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# Bytecode for our own packages, written here because nothing else may write it (PYTHONDONTWRITEBYTECODE):
# compiling them at every start would cost omctl a third of its time. Only changed files are recompiled.
venv: $(STAMP)
	$(BIN)/python -m compileall -q omview omprocs omcollector omanalyzer ommigmon > /dev/null

system-run:
	bash scripts/setup-system.sh run

system-test:
	bash scripts/setup-system.sh test

run: system-run venv
	$(BIN)/omview $(ARGS)

demo: system-test venv
	$(BIN)/omview --demo 3

lint: venv
	$(BIN)/ruff check .
	$(BIN)/mypy omview/core
	$(BIN)/lint-imports

test: system-test venv lint
	bash scripts/run-tests.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
