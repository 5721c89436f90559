#!/usr/bin/env node
// Runs every test/**/*.test.mjs with node:test, but test/install/ (npm
// installs, minutes: `make test-install`) unless named. Three files at a time
// on 2-core CI: the box and agent tests spend seconds waiting (for a daemon
// not to write, an agent's turn, a timeout to pass), and a third file keeps
// both cores busy meanwhile (measured on the whole suite: 1,057 s and 1.92
// cores busy, against 1,099 s with two at a time in a run that left four
// agent tests out).
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

function find(dir) {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) return n === 'fixtures' || p === join('test', 'install') ? [] : find(p);
    return n.endsWith('.test.mjs') ? [p] : [];
  });
}

const files = (process.argv.length > 2 ? process.argv.slice(2) : find('test')).sort();
// TAP on stdout (what CI reads), and after it, on stderr, where the time went (scripts/test-times-reporter.mjs).
const reporters = ['--test-reporter=tap', '--test-reporter-destination=stdout', `--test-reporter=${fileURLToPath(new URL('./test-times-reporter.mjs', import.meta.url))}`, '--test-reporter-destination=stderr'];
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=3', ...reporters, ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
