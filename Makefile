# trialkit — two commands set everything up: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
DEMO_DB ?= demo.db

.DEFAULT_GOAL := help
.PHONY: help install run demo test lint typecheck imports pytest bench clean

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# Playwright comes from PyPI without a browser of its own: the browser tests drive the
# system's Chromium, and run nginx as the reverse proxy in front of `trialkit serve`.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1
SYSTEM_PACKAGES := chromium nginx

$(STAMP): pyproject.toml
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; if [ -n "$$missing" ]; then \
	  echo "installing$$missing (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install trialkit with its test tools (and chromium, nginx)

demo: $(STAMP) ## Build (or keep) the demo KetHead training trial in demo.db
	$(BIN)/trialkit demo --db $(DEMO_DB)

run: demo ## Build the demo trial on SQLite and open the terminal UI
	$(BIN)/trialkit --db $(DEMO_DB) tui

lint: $(STAMP) ## ruff
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP) ## mypy --strict over src
	$(BIN)/mypy

imports: $(STAMP) ## import-linter: domain and services never import a face
	$(BIN)/lint-imports

pytest: $(STAMP) ## unit, store, service, BDD and TUI tests
	$(BIN)/pytest -n 2

test: lint typecheck imports pytest ## Everything CI runs

# `make bench QUICK=1`: every benchmark end to end on small sizes (a smoke run, not figures).
bench: $(STAMP) ## Run every benchmark in bench/ (all of them, even after a failure); QUICK=1 for small sizes
	@failed=""; for b in bench/*.py; do args=""; \
	  if [ -n "$(QUICK)" ]; then case $$b in \
	    bench/cli_startup.py|bench/tui_startup.py) args="--runs 2";; \
	    bench/diary_import.py) args="--rows 200 --rounds 1";; \
	    bench/dispense.py) args="--participants 4 --per-stratum 4";; \
	    bench/export.py) args="--participants 40 --rounds 1";; \
	    bench/labels.py) args="--participants 3 --rounds 1";; \
	    bench/randomize.py) args="--participants 10";; \
	    bench/seal.py) args="--sites 2 --per-stratum 8 --floor-runs 1";; \
	    bench/tui_scale.py) args="--participants 300 --small 56 --runs 1";; \
	    bench/audit_verify.py) args="--participants 60 --runs 1";; \
	    bench/status.py) args="--participants 300 --small 56 --runs 1";; \
	    *) echo "no quick sizes for $$b: add them to the Makefile"; failed="$$failed $$b"; continue;; \
	  esac; fi; \
	  echo "== $$b $$args"; $(BIN)/python $$b $$args || failed="$$failed $$b"; done; \
	  if [ -n "$$failed" ]; then echo "FAILED:$$failed"; exit 1; fi

clean: ## Remove the environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
