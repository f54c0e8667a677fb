# labelwatch: the two set-up commands are `make demo` and `make test`; everything they need
# (virtualenv, Python packages, the Kafka broker jars) is installed by the targets below.

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
KAFKA  := python3 scripts/local_kafka.py
DEBIAN_TOOLS := python3 scripts/debian_tools.py
DEMO_SECONDS ?= 30

.PHONY: install demo test check lint types broker broker-stop kafka-fetch debian-tools browser schema clean \
	bench-consensus bench-decode bench-drift bench-latency bench-privacy bench-chaos bench-throughput \
	bench-model bench-memory bench-scale-out bench-assist bench-review bench-agreement bench-plots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install labelwatch with its dev tools

kafka-fetch: ## download the pinned Apache Kafka jars from Maven Central (cached)
	$(KAFKA) fetch

debian-tools: ## fetch Debian's promtool and alertmanager into .cache/debian (for the tests)
	$(DEBIAN_TOOLS) fetch

broker: kafka-fetch ## start the local single-node Kafka broker (prints its bootstrap address)
	$(KAFKA) start

broker-stop: ## stop the local broker
	$(KAFKA) stop

# The demo starts the local broker (reusing one that is already running), runs a bounded
# end-to-end job on the embedded chDB store and prints a summary. KEEP_BROKER=1 leaves the
# broker running afterwards.
demo: install kafka-fetch ## run the main job on the embedded defaults and print what it saw
	@bootstrap=$$($(KAFKA) start) || exit 1; \
	LABELWATCH_KAFKA_BOOTSTRAP=$$bootstrap $(BIN)/labelwatch demo --seconds $(DEMO_SECONDS); \
	status=$$?; \
	if [ -z "$(KEEP_BROKER)" ]; then $(KAFKA) stop; fi; \
	exit $$status

# The dashboard's browser test drives Debian's chromium (headless) through Playwright; no
# browser is ever downloaded by a test tool. Installing the package needs root, as on CI.
CHROMIUM ?= /usr/bin/chromium
browser: ## install Debian's chromium for the dashboard's browser test (skipped when present)
	@test -x $(CHROMIUM) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	@test -x $(CHROMIUM) && $(CHROMIUM) --version

# Tests start their own broker in a temporary directory (tests/conftest.py) and stop it.
test: install kafka-fetch debian-tools browser ## run the whole test suite (unit, chDB, real broker end to end)
	$(BIN)/python -m pytest

check: lint types ## lint and type checks

lint: install
	$(BIN)/ruff check labelwatch tests scripts bench
	$(BIN)/ruff format --check labelwatch tests scripts bench

types: install
	$(BIN)/mypy

schema: install ## write the JSON Schema of the input events to docs/
	$(BIN)/labelwatch schema export -o docs/schemas.json

# Crowd-Kit (the batch baselines) conflicts with the worker's dependencies, so the accuracy
# benchmark gets a virtualenv of its own with labelwatch's model-side dependencies only.
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet 'crowd-kit==1.4.2' 'river>=0.26,<0.27' \
		'numba>=0.68,<0.69' 'pydantic>=2.14,<3' 'pydantic-settings>=2.16,<3' \
		'matplotlib>=3.9,<4' 'tqdm>=4.66,<5'
	$(BENCH_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

bench-consensus: $(BENCH_VENV)/.installed ## online consensus vs Crowd-Kit on the shared data sets
	$(BENCH_VENV)/bin/python bench/consensus_accuracy.py

bench-decode: install ## per-event validation cost
	$(BIN)/python bench/decode_throughput.py

bench-drift: install ## drift/spammer detection delay and false alarms, ADWIN as reference
	$(BIN)/python bench/drift_detection.py

bench-privacy: install ## privacy-spike detection delay and false alarms/day, fixed threshold as reference
	$(BIN)/python bench/privacy_detection.py

bench-latency: install kafka-fetch debian-tools ## produce -> ClickHouse / Alertmanager latency at 2,000 events/s
	$(BIN)/python bench/alert_latency.py

# The quick mode (under 5 minutes); THROUGHPUT_ARGS= for the full 500k-event run.
THROUGHPUT_ARGS ?= --quick
bench-throughput: install kafka-fetch debian-tools ## one worker end to end vs a bare Faust agent, and p99 latency at 2,000 events/s
	$(BIN)/python bench/throughput.py $(THROUGHPUT_ARGS)

# CHAOS_ARGS=--quick for a smoke run (2 copies, 3 kills, 30 s outage).
bench-chaos: install kafka-fetch ## kills, SIGTERM bounces, a 10-minute ClickHouse outage and a broker restart over ~100k events
	$(BIN)/python bench/chaos.py $(CHAOS_ARGS)

bench-model: install ## pure model path (replay): labels/s and the cost of each stage per event
	$(BIN)/python bench/model_path.py $(MODEL_ARGS)

bench-memory: install ## worker RSS per 100k tracked items and per 10k annotators
	$(BIN)/python bench/memory.py $(MEMORY_ARGS)

bench-scale-out: install kafka-fetch ## 1 vs 2 workers in one consumer group: speed-up and identical results
	$(BIN)/python bench/scale_out.py $(SCALE_ARGS)

bench-assist: install ## automation bias (precision/recall after 100 pre-labels each) and model drift, in simulation
	$(BIN)/python bench/assist.py $(ASSIST_ARGS)

bench-review: install ## review queue: wrong consensus found in the top 10% vs a random 10% (shared data sets)
	$(BIN)/python bench/review_sampling.py

bench-agreement: $(BENCH_VENV)/.installed ## streaming Krippendorff's alpha vs Crowd-Kit's batch value (shared data sets)
	$(BENCH_VENV)/bin/python bench/agreement.py

bench-plots: install ## re-draw every benchmark's plot from its JSON in bench/results
	$(BIN)/python bench/plots.py bench/results/*.json

clean: ## remove local state (not the cached Kafka jars)
	rm -rf .labelwatch .pytest_cache .mypy_cache .ruff_cache
