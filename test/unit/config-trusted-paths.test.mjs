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
