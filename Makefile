# Two commands do everything on a fresh machine:
#   make run    set up (first time) and start the server on the embedded models
#   make test   set up (first time) and run the whole test suite
HOST ?= 0.0.0.0
PORT ?= 8000
PYTEST_ARGS ?=
export HF_HUB_OFFLINE := 1

.PHONY: install test-data run lint test test-fast test-unit audit bench-latency bench-ab bench-deps bench-load bench-capacity bench-micro bench-soak bench-turns bench-tools bench-conversation clean

.venv/.installed: pyproject.toml requirements-models.txt scripts/install.sh
	./scripts/install.sh
	touch $@

install: .venv/.installed

test-data:
	./scripts/install-test-data.sh

# Without TWILIO_AUTH_TOKEN, `make run` starts in --dev mode (unsigned requests, loud warning).
run: install
	.venv/bin/voxline serve --host $(HOST) --port $(PORT) $(if $(TWILIO_AUTH_TOKEN),,--dev)

# ruff (lint and format), mypy on src/, and the import contracts (no cycles, the data flow's direction).
lint: install
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy
	.venv/bin/lint-imports

test: lint test-data
	.venv/bin/python -m pytest $(PYTEST_ARGS)

test-fast: install test-data
	.venv/bin/python -m pytest -m "not e2e" $(PYTEST_ARGS)

# The call session and its parts on a scripted stack and fake time: seconds, no models.
test-unit: install
	.venv/bin/python -m pytest -m unit $(PYTEST_ARGS)

bench-latency: install test-data
	.venv/bin/python bench/latency.py

bench-ab: install test-data
	.venv/bin/python bench/ab.py

# Benchmarks of Voxline itself (docs/benchmarks.md). Each prints a table and writes
# bench/results/<name>.json and .png. Run them on a quiet machine: `uptime` should show a low load.
bench-deps: install
	.venv/bin/python -c "import matplotlib" 2>/dev/null || .venv/bin/python -m pip install --quiet -e '.[bench]'

bench-load: bench-deps test-data
	.venv/bin/voxline bench load

bench-capacity: bench-deps test-data
	.venv/bin/voxline bench capacity

bench-micro: bench-deps test-data
	.venv/bin/voxline bench micro

bench-soak: bench-deps test-data
	.venv/bin/voxline bench soak

# Turn-taking on phone audio (docs/benchmarks.md): about 15 minutes for the whole labelled set.
bench-turns: bench-deps test-data
	.venv/bin/voxline bench turns

# Right answers on four businesses' agent files, spoken and typed (about 25 minutes).
bench-conversation: bench-deps test-data
	.venv/bin/voxline bench conversation

# Which tool the embedded LLM calls, on a labelled set of caller sentences (about a minute).
bench-tools: install
	.venv/bin/python bench/tool_calls.py

clean:
	rm -rf .venv .venv-audit build src/*.egg-info

# Known vulnerabilities in the installed dependencies (needs PyPI's JSON API or OSV: not offline).
# --strict: a package that could not be checked fails the audit instead of passing unnoticed.
audit: install
	python3 -m venv .venv-audit && .venv-audit/bin/pip install -q pip-audit
	.venv-audit/bin/pip-audit --strict --path "$$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
