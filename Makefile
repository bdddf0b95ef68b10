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

browser:  ## Debian's chromium for the ops board's browser test (installed when root can)
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium (the ops board's browser test)"; \
	    apt-get update -qq || true; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	      || echo "could not install chromium: the board's browser test cannot run"; \
	  else \
	    echo "chromium is not installed: the board's browser test will be skipped"; \
	  fi; }

tls-proxy:  ## Debian's stunnel: the TLS tests put it in front of the embedded broker
	@command -v stunnel4 >/dev/null || command -v stunnel >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's stunnel4 (the TLS tests' proxy)"; \
	    apt-get update -qq || true; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stunnel4 >/dev/null \
	      || echo "could not install stunnel4: the TLS tests cannot run"; \
	  else \
	    echo "stunnel is not installed: the TLS tests will be skipped"; \
	  fi; }

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
