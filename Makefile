# Common targets. `make test` does the whole set-up on a fresh machine.
.PHONY: setup build test lint docs bench bench-sandbox bench-gate bench-gate-compare bench-egress bench-providers bench-mcp bench-ledger clean

setup:
	bash scripts/setup.sh

build:
	npm run build --silent

test: setup
	npm test

lint:
	npx tsc -p tsconfig.json --noEmit
	node scripts/check-layers.mjs
	node scripts/build-addon.mjs  # -Wall -Wextra -Werror: warning-clean or it fails

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
bench-mcp: setup
	node bench/mcp.mjs

# Append throughput with the Merkle tree against without, then proof times at 10^6 events.
bench-ledger: build
	node bench/ledger.mjs

clean:
	rm -rf build dist providers/build

bench-providers: setup
	node --expose-gc bench/providers.mjs
	node bench/provider-exec.mjs
