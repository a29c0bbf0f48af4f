# textme-sdk: every target sets itself up from scratch on a fresh machine.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed

# Tests and the demo never touch the network.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup demo test test-all docs bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile $(wildcard plugins/*/pyproject.toml)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first: the CPU build installs from a local file in seconds.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -e ".[dev,train,docs,search]"
	@for p in plugins/*/; do \
	  if [ -f $$p/pyproject.toml ]; then echo "installing plugin $$p"; \
	    $(PIP) install --quiet -c constraints.txt -e $$p || exit 1; fi; done
	$(PY) tools/install_env_fixes.py
	touch $(STAMP)

demo: setup
	$(VENV)/bin/textme demo

# Tests run offline against a throw-away Hugging Face / textme cache.
PYTEST_RUN = tmp=$$(mktemp -d); HF_HOME=$$tmp/hf TEXTME_HOME=$$tmp/textme \
	  $(PY) -m pytest -q $(1) tests $(wildcard plugins/*/tests); rc=$$?; rm -rf $$tmp; exit $$rc

test: setup
	@$(call PYTEST_RUN,-m "not slow")

test-all: setup
	@$(call PYTEST_RUN,)

docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

# Every benchmark, then one table of every check (benchmarks/results/*.json); QUICK=1 for
# smaller sizes (minutes), e.g. `make bench QUICK=1`.
bench: setup
	$(PY) benchmarks/run_all.py $(if $(QUICK),--quick)

clean:
	rm -rf $(VENV) site build *.egg-info
