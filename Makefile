# fed-dns: `make demo` and `make test` are the quick start (README).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: install demo test lint bench clean system-deps

# A virtualenv with the package and its test extra; redone when pyproject changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# System tools the tests use, each from Debian when missing (command:package): a real etcd
# (tests start their own on free loopback ports), kubectl against the simulated members, and
# openssl for test certificates and the simulator's TLS.
SYSTEM_TOOLS = etcd:etcd-server kubectl:kubernetes-client openssl:openssl

system-deps:
	@missing=""; for pair in $(SYSTEM_TOOLS); do \
	  command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@etcd --version | head -1

demo: install
	$(VENV)/bin/fed-dns demo

# Coverage of the package by the whole suite, with a floor at the figure measured when it was
# set (84 % on 2026-12-01; subprocesses such as `fed-dns run` are not counted).
COVERAGE_FLOOR = 80

test: install system-deps
	$(PY) -m pytest -q --cov=fed_dns --cov-report=term:skip-covered --cov-fail-under=$(COVERAGE_FLOOR)

lint: install
	$(VENV)/bin/lint-imports

bench: install
	@echo "benchmarks are run by hand: see bench/README.md"

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
