# The README's commands. Each installs what it needs on a fresh Debian machine.
SWIFT ?= swift
STATE ?= ./state

.PHONY: run demo evolution follow-up determinism flaky-bank research-agent test docs bench deps browser schemathesis postgres stop-postgres

deps:
	@if ! pkg-config --exists lmdb 2>/dev/null && [ ! -f /usr/include/lmdb.h ]; then \
		echo "Installing liblmdb-dev (LMDB headers and library)…"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq liblmdb-dev lmdb-utils pkg-config >/dev/null; \
	fi
	@command -v pkg-config >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pkg-config >/dev/null)

# Headless Chromium, for the dashboard's browser test.
browser:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
		(echo "Installing chromium (headless browser for the dashboard test)…"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# schemathesis (PyPI, pinned) in .build/venv, for the OpenAPI conformance test.
schemathesis:
	@tools/schemathesis.sh

# The main job: the HTTP API on the embedded LMDB store in ./state, with the example workflows.
# It prints the URL and the curl lines that start a workflow and send it its event.
run: deps
	$(SWIFT) build --product continuum
	./.build/debug/continuum serve --path $(STATE)

# The onboarding story: a workflow killed with SIGKILL after its first step continues at step 2.
demo: deps
	$(SWIFT) build --product Onboarding
	./.build/debug/Onboarding demo --state ./demo-state

# The code-change story: version 1 sleeps, the deploy gate checks version 2, development mode
# reruns the changed step, production suspends, and resume, reset, fork and cancel are the ways out.
evolution: deps
	$(SWIFT) build --product Evolution
	./.build/debug/Evolution story --state ./evolution-state

# The three-day follow-up: a thank-you when feedback comes, a reminder after three days without;
# on the manual clock (three days pass at once). `FollowUp --real --day-ms 1000` uses the system clock.
follow-up: deps
	$(SWIFT) build --product FollowUp
	./.build/debug/FollowUp

# Recorded time, UUID and random number: the same after a SIGKILL and a replay; Date() is not.
determinism: deps
	$(SWIFT) build --product Determinism
	./.build/debug/Determinism

# The research agent: a child per source, scrapes as webhooks, a model queue of 4 at once and
# 60 a minute, progress as a query, one source timing out.
research-agent: deps
	$(SWIFT) build --product ResearchAgent
	./.build/debug/ResearchAgent

# A step that calls a flaky bank (a local server failing three times) retries 1 s, 2 s, 4 s apart.
flaky-bank: deps
	$(SWIFT) build --product FlakyBank
	./.build/debug/FlakyBank

# The tests get a throwaway PostgreSQL (tools/postgres.sh) through CONTINUUM_POSTGRES_URL.
test: deps browser schemathesis
	$(SWIFT) build --build-tests
	url=$$(tools/postgres.sh start) && CONTINUUM_POSTGRES_URL=$$url $(SWIFT) test --skip-build

# The DocC documentation of Continuum, ContinuumHTTP and ContinuumTesting (swift-docc-plugin),
# combined into one static site in $(DOCS): serve the folder with any web server and open
# /documentation/continuum. Every DocC warning is an error, so a broken ``symbol`` link in an
# article or a /// comment fails the build.
DOCS ?= .build/docs
docs: deps
	$(SWIFT) package --allow-writing-to-directory $(DOCS) generate-documentation \
		--target Continuum --target ContinuumHTTP --target ContinuumTesting \
		--enable-experimental-combined-documentation --warnings-as-errors \
		--transform-for-static-hosting --output-path $(DOCS)

bench: deps
	$(SWIFT) build -c release --product continuum
	./.build/release/continuum bench --workflows 20000 --steps 3 --concurrency 1000

# A throwaway PostgreSQL 15 for tests and benchmarks (installed if missing); prints its URL.
postgres:
	@tools/postgres.sh start

# Stops it and deletes its folder.
stop-postgres:
	@tools/postgres.sh stop
