// D: launcher errors are one line naming the problem and the fix, exit 125;
// a kernel refusal while building the box names the step and the errno.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, chmodSync, rmSync } from 'node:fs';
import { skipReason, makeWorkspace, cleanupWorkspaces, runBox } from '../helpers/sandbox.mjs';

const secret = `/root/latchgate-test-secret-${process.pid}`;
before(() => {
  if (process.getuid() !== 0) return;
  mkdirSync(secret, { recursive: true });
  chmodSync(secret, 0o700);
});
after(() => {
  cleanupWorkspaces();
  rmSync(secret, { recursive: true, force: true });
});

test('[root] a mount the agent user may not open: the step, the errno and the fix, exit 125', { skip: skipReason('root') }, async () => {
  const ws = makeWorkspace('err');
  const r = await runBox('root', { workspace: ws, args: ['--ro', secret], cmd: ['true'] });
  assert.equal(r.code, 125);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], new RegExp(`building the box failed at mount operation \\(bind ${secret} -> ${secret} \\(read-only\\)\\): EACCES; the box is built as uid \\d+ \\(lgtest\\), which may not open ${secret}`));
});

// Root can open any path, so only the unprivileged launcher can meet this.
test('[user] a path the launcher itself cannot open is named with EACCES, exit 125', { skip: skipReason('root') }, async () => {
  const ws = makeWorkspace('err');
  const r = await runBox('user', { workspace: ws, args: ['--ro', `${secret}/inner`], cmd: ['true'] });
  assert.equal(r.code, 125);
  assert.match(r.stderr.trim(), new RegExp(`^latchgate: --ro ${secret}/inner: permission denied on the host \\(EACCES\\); latchgate runs as uid \\d+, which must be able to open it$`));
});
