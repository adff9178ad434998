# The two set-up commands of the README: `make demo` and `make test`.
# Each builds its own virtual environment (.venv) and installs what it needs into it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
OUT ?= out/demo

.PHONY: demo test bench soak clean test-tools scenarios

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# setuptools warns on every editable install about folders named like the package: there is none
# (the package, cargoscreen, is mapped from pipeline/), so the warning is only noise.
# The one-pass walk in C (pipeline/domain/_onepass.pyx) is built by that install: a change to it reinstalls.
$(VENV)/.installed-%: setup.py pyproject.toml pipeline/domain/_onepass.pyx | $(BIN)/python
	PYTHONWARNINGS="ignore:Editable installation" $(BIN)/pip install --quiet -e '.[$*]'
	touch $@

demo: $(VENV)/.installed-embedded
	$(BIN)/cargoscreen demo --out $(OUT)

# Debian tools the tests use: headless chromium and chromedriver (the workbench's end-to-end
# tests), promtool from prometheus (the alert rules), redis-server and openssl (Redis over TLS).
# Installed with apt when missing.
test-tools:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null && command -v promtool >/dev/null \
	  && command -v redis-server >/dev/null && command -v openssl >/dev/null || { \
	  echo "installing Debian's chromium, chromium-driver, prometheus (promtool), redis-server (TLS) for the tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    --no-install-recommends chromium chromium-driver prometheus redis-server openssl >/dev/null; }

test: $(VENV)/.installed-test test-tools
	CARGOSCREEN_REQUIRE_TOOLS=1 $(BIN)/python -m pytest -n 2 -q

bench: $(VENV)/.installed-bench
	$(BIN)/python bench/validation.py
	$(BIN)/python bench/container_status.py
	$(BIN)/python bench/scoring.py
	$(BIN)/python bench/link_step.py
	$(BIN)/python bench/goods_classifier.py
	$(BIN)/python bench/end_to_end.py
	$(BIN)/python bench/workbench.py
	$(BIN)/python bench/analytics.py

# Detection on the independent scenario set (tests/scenarios) and on the demo's traffic: recall per
# pattern, clean referrals per rule, rules whose referrals are mostly clean.
scenarios: $(VENV)/.installed-bench
	$(BIN)/python bench/scenarios.py

soak: $(VENV)/.installed-bench
	$(BIN)/python bench/soak.py --rate 500 --minutes 30

clean:
	rm -rf $(VENV) out .pytest_cache build pipeline/domain/_onepass.c pipeline/domain/_onepass.*.so
