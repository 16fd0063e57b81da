# The two quick-start commands: `make demo` (compile the catalog into out/) and `make test`.
# Both create .venv if it is missing and install what they need from this repository's files.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.psgen-installed

.PHONY: demo test bench sysdeps clean examples

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

# Regenerate the committed examples (a test fails with this hint when they are stale).
examples: $(STAMP)
	$(PY) -m psgen build cowork/doctor cowork/repair-network cowork/reset-session-disk cowork/fix-wsl-conflict --out-dir examples/cowork --launcher
	for p in doctor repair-network reset-session-disk fix-wsl-conflict; do $(PY) -m psgen explain cowork/$$p -o examples/cowork/$$p.md; done
