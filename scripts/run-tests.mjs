#!/usr/bin/env node
// Runs every test/**/*.test.mjs with node:test (two at a time: 2-core CI),
// but test/install/ (npm installs, minutes: `make test-install`) unless named.
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
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', ...reporters, ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
