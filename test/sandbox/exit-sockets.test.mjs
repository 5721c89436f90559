// B.11: the box's init creates listening sockets on 127.0.0.1 inside the
// box's network namespace and passes them to the Node parent, which serves
// them; a port nobody serves stays closed. Also --strict-net's TCP rules.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, distDir, runNode } from '../helpers/sandbox.mjs';

const fixture = fileURLToPath(new URL('../fixtures/exit-sockets.mjs', import.meta.url));
after(cleanupWorkspaces);

// Inside the box: GET the served port, then try a port nobody listens on, then
// try to bind a server of our own; one labelled line each.
const CLIENT = `
import socket, urllib.request, sys
def attempt(label, fn):
    try:
        print(label, "OK", fn())
    except Exception as e:
        print(label, "ERR", type(e).__name__, getattr(e, "errno", None) or getattr(getattr(e, "reason", None), "errno", None))
served, closed = int(sys.argv[1]), int(sys.argv[2])
attempt("served", lambda: urllib.request.urlopen(f"http://127.0.0.1:{served}/probe", timeout=5).read().decode())
attempt("closed", lambda: socket.create_connection(("127.0.0.1", closed), timeout=5).close())
def bind():
    s = socket.socket(); s.bind(("127.0.0.1", closed)); s.listen(); return s.getsockname()[1]
attempt("bind", bind)
`;

function parse(stdout) {
  return Object.fromEntries(stdout.trim().split('\n').map((l) => [l.split(' ')[0], l.split(' ').slice(1)]));
}

/** Runs the fixture: the parent serves port `served`; the client also tries `closed`. */
async function runExits(mode, strict, served, closed) {
  const ws = makeWorkspace('exits');
  const r = await runNode(mode, [fixture, distDir(mode), ws, strict ? '1' : '0', String(served), '--', '/usr/bin/python3', '-c', CLIENT, String(served), String(closed)]);
  const lines = r.stdout.trim().split('\n');
  const summary = JSON.parse(lines.pop());
  assert.equal(summary.error, null, r.stderr);
  assert.equal(summary.exitCode, 0, r.stdout + r.stderr);
  return { summary, got: parse(lines.join('\n')), out: r.stdout };
}

for (const mode of MODES) {
  test(`[${mode}] the parent serves a socket made inside the box; an unserved port stays closed`, { skip: skipReason(mode) }, async () => {
    const { summary, got, out } = await runExits(mode, false, 3128, 3129);
    assert.equal(summary.fdsReceived, 1);
    assert.equal(summary.served, 1, 'the parent answered exactly one request');
    assert.equal(got.served[0], 'OK', out);
    assert.match(got.served.join(' '), /hello from the parent pid \d+ for \/probe/);
    assert.deepEqual(got.closed.slice(0, 2), ['ERR', 'ConnectionRefusedError']);
    // Without --strict-net the agent may run its own servers on its loopback.
    assert.equal(got.bind[0], 'OK', out);
  });

  test(`[${mode}] --strict-net: connect only to the exits' ports, no bind`, { skip: skipReason(mode) }, async () => {
    const { got, out } = await runExits(mode, true, 3130, 3131);
    assert.equal(got.served[0], 'OK', out);
    // Landlock refuses before the TCP stack answers: EACCES (13), not a refusal.
    assert.deepEqual(got.closed.slice(0, 3), ['ERR', 'PermissionError', '13'], out);
    assert.deepEqual(got.bind.slice(0, 3), ['ERR', 'PermissionError', '13'], out);
  });
}
