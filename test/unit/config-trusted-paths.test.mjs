// What a configuration names that the host trusts or runs (src/config/trusted-paths.ts):
// a program's argv[0], and a script it is given by absolute path, as surely run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { trustedPathsOf } from '../../dist/config/trusted-paths.js';

test("a checkpoint sink's program and the script file it is given are trusted paths; other arguments are not", (t) => {
  const d = mkdtempSync(path.join(os.tmpdir(), 'latchgate-trusted-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  const script = path.join(d, 'push.sh');
  writeFileSync(script, '#!/bin/sh\n');
  mkdirSync(path.join(d, 'repo'));
  const doc = { ledger: { checkpoints: { sinks: { backup: { command: ['/bin/sh', script, '-C', path.join(d, 'repo'), path.join(d, 'missing.sh'), 'relative.sh'] } } } } };
  const got = trustedPathsOf(doc, path.join(d, 'latchgate.toml')).map((p) => [p.path, p.type, p.key]);
  assert.deepEqual(got, [['/bin/sh', 'file', 'ledger.checkpoints.sinks.backup.command'], [script, 'file', 'ledger.checkpoints.sinks.backup.command']]);
});

test('a program and its scripts as the host runs them: relative to the working directory, a bare name through PATH; a key source\'s cmd: the same, and its file: (a secret) too', (t) => {
  const d = mkdtempSync(path.join(os.tmpdir(), 'latchgate-trusted-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  mkdirSync(path.join(d, 'scripts'));
  mkdirSync(path.join(d, 'bin'));
  writeFileSync(path.join(d, 'scripts', 'publish.sh'), '#!/bin/sh\n');
  writeFileSync(path.join(d, 'scripts', 'key.sh'), '#!/bin/sh\n');
  writeFileSync(path.join(d, 'bin', 'pusher'), '#!/bin/sh\n', { mode: 0o755 });
  const doc = {
    ledger: { checkpoints: { sinks: { rel: { command: ['sh', 'scripts/publish.sh'] }, bare: { command: ['pusher', 'origin'] }, dotted: { command: ['./scripts/publish.sh'] } } } },
    sandbox: { agent: { credentials: { api: { key_source: 'cmd:["sh","scripts/key.sh"]' }, file: { key_source: 'file:~/.keys/anthropic' } } } },
  };
  const got = trustedPathsOf(doc, path.join(d, 'latchgate.toml'), d, `${path.join(d, 'bin')}:/usr/bin:/bin`).map((p) => `${p.key} ${p.path}`);
  const sh = ['/usr/bin/sh', '/bin/sh'].find((p) => got.some((g) => g.endsWith(` ${p}`)));
  assert.ok(sh, got.join('\n'));
  for (const want of [
    `ledger.checkpoints.sinks.rel.command ${path.join(d, 'scripts', 'publish.sh')}`,
    `ledger.checkpoints.sinks.bare.command ${path.join(d, 'bin', 'pusher')}`,
    `ledger.checkpoints.sinks.dotted.command ${path.join(d, 'scripts', 'publish.sh')}`,
    `sandbox.agent.credentials.api.key_source ${path.join(d, 'scripts', 'key.sh')}`,
    `sandbox.agent.credentials.file.key_source ${path.join(os.homedir(), '.keys', 'anthropic')}`,
  ]) {
    assert.ok(got.includes(want), `${want} missing from:\n${got.join('\n')}`);
  }
  assert.ok(!got.some((g) => g.endsWith('/origin')), 'an argument naming no file is not a path');
});
