// Resource and socket escapes (sandbox-anchors §11 items 5 and 19): a disk
// fill stops at the private tmpfs size; host Unix sockets, by path or
// abstract name, are out of reach while the box's own sockets work.
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, runBox, sh } from '../helpers/sandbox.mjs';

after(cleanupWorkspaces);

const hostSock = path.join(os.tmpdir(), `latchgate-host-${process.pid}.sock`);
const abstractName = `latchgate-host-abstract-${process.pid}`;
let connections = 0;
const servers = [];
before(async () => {
  for (const addr of [hostSock, `\0${abstractName}`]) {
    const s = net.createServer((c) => {
      connections++;
      c.end('host secret\n');
    });
    await new Promise((r) => s.listen(addr, r));
    servers.push(s);
  }
});
after(() => {
  for (const s of servers) s.close();
  rmSync(hostSock, { force: true });
});

const SOCKETS = `
import socket, os
def attempt(label, addr):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(addr); print(label, "OK", s.recv(100))
    except OSError as e:
        print(label, "ERR", e.errno)
attempt("path", ${JSON.stringify(hostSock)})
attempt("abstract", "\\0${abstractName}")
for p in ["/run/user", "/var/run/docker.sock", "/run/docker.sock", "/run/dbus/system_bus_socket", "/tmp/.X11-unix"]:
    print("exists", p, os.path.exists(p))
# The box's own Unix sockets work, by path and abstract name.
for addr in ["own.sock", "\\0own-abstract"]:
    srv = socket.socket(socket.AF_UNIX); srv.bind(addr); srv.listen()
    c = socket.socket(socket.AF_UNIX); c.connect(addr); a, _ = srv.accept(); a.sendall(b"hi"); print("own", c.recv(2).decode())
`;

for (const mode of MODES) {
  test(`[${mode}] host Unix sockets are unreachable; the box's own work`, { skip: skipReason(mode) }, async () => {
    const ws = makeWorkspace('unix');
    const before = connections;
    const r = await runBox(mode, { cmd: ['/usr/bin/python3', '-c', SOCKETS], workspace: ws });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^path ERR 2$/m, 'ENOENT: the host socket path does not exist in the box');
    assert.match(r.stdout, /^abstract ERR 111$/m, 'ECONNREFUSED: abstract names are per network namespace');
    for (const line of r.stdout.split('\n').filter((l) => l.startsWith('exists'))) assert.match(line, / False$/);
    assert.equal(r.stdout.match(/^own hi$/gm)?.length, 2, r.stdout);
    assert.equal(connections, before, 'the host servers never saw a connection');
  });

  test(`[${mode}] a disk fill stops at the private tmpfs size; smaller writes succeed`, { skip: skipReason(mode) }, async () => {
    const ws = makeWorkspace('fill');
    const r = await sh(
      mode,
      'for d in /tmp "$HOME"; do dd if=/dev/zero of=$d/small bs=1k count=256 2>/dev/null && echo "small $d ok"; dd if=/dev/zero of=$d/fill bs=1k count=8192 2>&1 | grep -o "No space left on device" | head -1; done',
      { workspace: ws, args: ['--tmp-size', '2m'] },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.match(/^small .* ok$/gm)?.length, 2, r.stdout);
    assert.equal(r.stdout.match(/^No space left on device$/gm)?.length, 2, r.stdout);
  });
}
