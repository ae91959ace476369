# streamlearn: `make demo` runs the whole system locally, `make test` runs the suite.
# Both install what is missing first (Python packages, redis-server, Kafka's jars).

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := redis-server maven chromium
# Test and bench tools, installed without recommends (prometheus would pull a node exporter onto port 9100).
APT_TOOLS := prometheus chromium-driver wrk

.PHONY: deps system-deps python-deps kafka-jars test demo lint bench bench-drift bench-checkpoint bench-fleet bench-challengers bench-pending lock clean compose-env

deps: system-deps python-deps kafka-jars

system-deps:
	@missing=""; tools=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v prometheus >/dev/null || tools="$$tools prometheus"; \
	command -v chromedriver >/dev/null || tools="$$tools chromium-driver"; \
	command -v wrk >/dev/null || tools="$$tools wrk"; \
	if [ -n "$$missing$$tools" ]; then \
	  echo "installing Debian packages:$$missing$$tools"; \
	  $(SUDO) apt-get update -qq || exit 1; \
	fi; \
	if [ -n "$$missing" ]; then \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi; \
	if [ -n "$$tools" ]; then \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$tools; \
	fi

python-deps: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[serve,train,dev]'
	touch $@

kafka-jars: python-deps
	@$(PY) -c "from stream.local_services import kafka_libs; print('Kafka jars in', kafka_libs())"

test: deps
	$(PY) -m ruff check .
	$(PY) -m pytest

demo: deps
	$(VENV)/bin/streamlearn demo

lint: python-deps
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# Service figures (the performance bars) as ratios against baselines of the same run -> docs/benchmarks.md.
# Starts its own Kafka and Redis; BENCH_ARGS e.g. "--repeat 5" or "--smoke" (no doc written).
bench: deps
	$(PY) bench/run.py $(BENCH_ARGS)

# Detection delay and false alarms of the drift monitors -> docs/benchmarks.md (no services needed).
bench-drift: python-deps
	$(PY) bench/drift_detection.py

# Trainer rate with a checkpoint every second, forked / inline / none -> docs/benchmarks.md
# (starts its own redis-server).
# Trainer fleet: SIGKILL/SIGTERM hand-over to a standby, train --all spread -> docs/benchmarks.md
# (starts its own Kafka and Redis).
bench-fleet: deps
	$(PY) bench/fleet.py $(BENCH_ARGS)

# Champion + 2 challengers against the three plain loops -> docs/benchmarks.md (own Kafka and Redis).
bench-challengers: deps
	$(PY) bench/challengers.py $(BENCH_ARGS)

# 100,000 predictions pending a label: checkpoint parts, replica load per version, p99, memory.
bench-pending: deps
	$(PY) bench/pending_joins.py $(BENCH_ARGS)

bench-checkpoint: system-deps python-deps
	$(PY) bench/checkpoint_fork.py
# Secrets for `docker compose` (once): .env beside docker-compose.yml, git-ignored.
compose-env: .env

.env:
	@umask 077; python3 -c 'import secrets; print(f"STREAMLEARN_SIGNING_KEY={secrets.token_hex(32)}\nSTREAMLEARN_ADMIN_KEY={secrets.token_hex(32)}")' > $@
	@echo "wrote $@ with a fresh STREAMLEARN_SIGNING_KEY and STREAMLEARN_ADMIN_KEY"

# Re-resolve every pinned version from pyproject.toml (both sides, all extras).
lock:
	rm -rf .cache/lock-venv && $(PYTHON) -m venv .cache/lock-venv
	.cache/lock-venv/bin/pip install -q '.[serve,train,dev]'
	{ echo "# Every version both sides run, pinned so training and serving unpickle the same River."; \
	  echo "# Regenerate: make lock (resolves pyproject.toml with all extras, then pip freeze)."; \
	  .cache/lock-venv/bin/pip freeze --exclude streamlearn; } > constraints.txt

clean:
	rm -rf $(VENV) .cache/demo .pytest_cache
