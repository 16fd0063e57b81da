# The two quick-start commands: `make demo` (compile the catalog into out/) and `make test`.
# Both create .venv if it is missing and install what they need from this repository's files.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.psgen-installed

.PHONY: demo test bench sysdeps clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# System tools the tests use as independent implementations (osslsigncode for Authenticode).
sysdeps:
	@command -v osslsigncode >/dev/null 2>&1 || ./scripts/install-sysdeps

demo: $(STAMP)
	$(PY) -m psgen.demo out

test: $(STAMP) sysdeps
	$(PY) -m pytest -q

bench: $(STAMP) sysdeps
	$(PY) -m bench

clean:
	rm -rf out dist build .pytest_cache
