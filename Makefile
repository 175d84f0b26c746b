# fed-dns: `make demo` and `make test` are the quick start (README).
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: install demo test lint bench clean etcd kubectl

# A virtualenv with the package and its test extra; redone when pyproject changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Debian's etcd-server when no etcd is on PATH (tests start their own on a free loopback port).
etcd:
	@command -v etcd >/dev/null 2>&1 || { \
	  echo "etcd not found: installing Debian's etcd-server"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq etcd-server >/dev/null; }
	@etcd --version | head -1

# kubectl drives the simulated members in tests (Debian's kubernetes-client when missing).
kubectl:
	@command -v kubectl >/dev/null 2>&1 || { \
	  echo "kubectl not found: installing Debian's kubernetes-client"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq kubernetes-client >/dev/null; }

demo: install
	$(VENV)/bin/fed-dns demo

test: install etcd kubectl
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/lint-imports

bench: install
	@echo "benchmarks are run by hand: see bench/README.md"

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
