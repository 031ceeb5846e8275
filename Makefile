# The two commands a fresh machine needs: `make run` and `make test`. Both install what is missing.
SHELL := /bin/bash
export PATH := $(CURDIR)/tools/bin:$(PATH)
NODE := $(CURDIR)/tools/bin/node

.PHONY: setup run test typecheck bench clean
# CI reads node:test's TAP summary (# pass N / # fail N); people get the spec reporter.
REPORTER := $(if $(CI),tap,spec)

setup:
	@bash scripts/setup.sh

run: setup
	@bash scripts/demo.sh

typecheck: setup
	@node_modules/.bin/tsc --noEmit -p tsconfig.json && echo "typecheck: ok"

test: typecheck
	@$(NODE) --disable-warning=ExperimentalWarning --test --test-concurrency=2 --test-reporter=$(REPORTER) 'test/**/*.test.ts'

# `make bench ARGS='--only store,scale'` runs some benches only; BENCH_QUICK=1 for a smoke run.
bench: setup
	@$(NODE) --disable-warning=ExperimentalWarning bench/run.ts $(ARGS)

clean:
	rm -rf tools node_modules bench/results .corral-demo
