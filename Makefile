# Set-up in two commands (README "Set up"): `make review` runs the weekly premium-model review on the bundled
# sample week, `make test` runs the test suite. Each creates the virtual environment .venv on first use (pip install
# -e ".[test]") and reuses it afterwards; it is reinstalled when pyproject.toml changes.
# TFYSIM_VENV=DIR uses an existing environment instead, as is (nothing installed into it): the worktree's own
# `simulator` package is imported through PYTHONPATH. CI's clean-clone check points it at the environment it runs in.

TFYSIM_VENV ?=
VENV := $(if $(TFYSIM_VENV),$(TFYSIM_VENV),.venv)
PYTHON := $(VENV)/bin/python
RUN := PYTHONPATH=$(CURDIR) $(PYTHON)
OUT ?= reports/premium-review
PYTEST_ARGS ?=

.PHONY: review test env

review: env
	$(RUN) -m simulator run scenarios/premium-review.yaml --out $(OUT)

test: env
	$(RUN) -m pytest $(PYTEST_ARGS)

ifeq ($(TFYSIM_VENV),)
env: .venv/.tfysim-installed

.venv/.tfysim-installed: pyproject.toml
	test -x .venv/bin/python || python3 -m venv .venv
	.venv/bin/python -m pip install -q -e ".[test]"
	touch $@
else
env:
	@test -x $(PYTHON) || { echo "Error: TFYSIM_VENV=$(TFYSIM_VENV) has no bin/python." >&2; exit 2; }
endif
