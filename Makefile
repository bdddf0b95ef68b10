# Two commands on a fresh machine: `make run` (the whole system) and `make test`.
# Both create the virtualenv and install everything first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-fast lint format bench bench-quick clean browser tls-proxy

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)  ## the whole system on this machine (embedded broker, worker, API)
	$(BIN)/lineage-faust up

test: $(STAMP) browser tls-proxy  ## lint, then every test (unit, store contract, API over HTTP, end to end, crash, board in Chromium)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## unit tests only (no broker, no processes)
	$(BIN)/python -m pytest -m "not integration"

# $(call debian,COMMAND,PACKAGE,WHAT FOR): Debian's PACKAGE unless COMMAND exists (installed
# when root can; otherwise the tests that need it are skipped, and say so)
define debian
	@command -v $(1) >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's $(2) ($(3))"; \
	    apt-get update -qq || true; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(2) >/dev/null \
	      || echo "could not install $(2): $(3) cannot run"; \
	  else \
	    echo "$(2) is not installed: $(3) will be skipped"; \
	  fi; }
endef

browser:  ## Debian's chromium for the ops board's browser test
	$(call debian,chromium,chromium,the board's browser test)

tls-proxy:  ## Debian's stunnel: the TLS tests put it in front of the embedded broker
	$(call debian,stunnel4,stunnel4,the TLS tests)

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)  ## every benchmark, one table + bench-results/bench.json (20-30 min on 2 cores)
	$(BIN)/python -m bench

bench-quick: $(STAMP)  ## the same at small sizes (about 5 min): a fast look
	$(BIN)/python -m bench --quick

clean:
	rm -rf $(VENV) .lineage .pytest_cache .ruff_cache *.egg-info
