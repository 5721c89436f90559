// The box's network and Unix-socket reach: inside there is only `lo`, up; servers of the host, on its loopback
// or on its own interface addresses, are unreachable over TCP, UDP and ICMP;
// raw, packet, vsock and non-route netlink sockets are refused; netlink cannot
// reconfigure anything; host Unix sockets, abstract or on disk, are out of
// reach. Next to each refusal, the same thing done inside the box works.
//
// Only loopback and this machine's own interface addresses are ever contacted.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, sh } from '../helpers/sandbox.mjs';
import { buildEscapeProbe } from '../helpers/escape-probe.mjs';
import { expectErr, expectOk, runProbes, resultOf, shq } from '../helpers/probe-calls.mjs';

const probe = await buildEscapeProbe();

const extraDirs = [];
const closers = [];
after(async () => {
  for (const c of closers.splice(0)) await c();
  cleanupWorkspaces();
  for (const d of extraDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const probeBox = (mode, calls, opts) => runProbes(mode, probe, calls, opts);

function tagged(stdout) {
  const m = new Map();
  for (const line of stdout.split('\n')) {
    const i = line.indexOf(' ');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1));
  }
  return m;
}

// ---- host side ---------------------------------------------------------------

/** This machine's own non-loopback addresses (never anything else). */
function ownAddresses() {
  const all = Object.values(os.networkInterfaces()).flat().filter((a) => a && !a.internal);
  return {
    v4: all.find((a) => a.family === 'IPv4')?.address,
    // A global (or ULA) IPv6 address: link-local ones need a scope id.
    v6: all.find((a) => a.family === 'IPv6' && !a.address.toLowerCase().startsWith('fe80') && (a.scopeid ?? 0) === 0)?.address,
  };
}

/** A TCP server on the host that counts the connections it accepts. */
async function hostTcpServer(host) {
  const s = { connections: 0 };
  const server = net.createServer((c) => {
    s.connections++;
    c.on('error', () => {});
    c.destroy();
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: 0, host, ipv6Only: host === '::' ? false : undefined }, resolve);
  });
  s.port = server.address().port;
  closers.push(() => new Promise((r) => server.close(r)));
  return s;
}

/** A UDP socket on the host that counts the datagrams it receives. */
async function hostUdpSocket(host) {
  const s = { messages: 0 };
  const sock = dgram.createSocket({ type: host.includes(':') ? 'udp6' : 'udp4', ipv6Only: false });
  sock.on('message', () => s.messages++);
  await new Promise((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, host, resolve);
  });
  s.port = sock.address().port;
  closers.push(() => new Promise((r) => sock.close(r)));
  return s;
}

/** A Unix stream server on the host (path or abstract name) that counts connections. */
async function hostUnixServer(where) {
  const s = { connections: 0 };
  const server = net.createServer((c) => {
    s.connections++;
    c.on('error', () => {});
    c.destroy();
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(where, resolve);
  });
  closers.push(() => new Promise((r) => server.close(r)));
  return s;
}

const own = ownAddresses();

for (const mode of MODES) {
  describe(`[${mode} launcher] network`, { skip: skipReason(mode) }, () => {
    test('only lo exists inside, up, with loopback addresses only', async () => {
      const py = [
        'import socket, fcntl, struct',
        'print("IFACES", socket.if_nameindex())',
        's = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)',
        'flags = struct.unpack("16sH", fcntl.ioctl(s.fileno(), 0x8913, struct.pack("16sH", b"lo", 0)))[1]',
        'print("LOFLAGS", "UP" if flags & 1 else "DOWN", "LOOPBACK" if flags & 8 else "-", "RUNNING" if flags & 0x40 else "-")',
      ].join('\n');
      const { res, calls } = await probeBox(mode, [['dump', 'netlink-route-dump'], ['netlink-route-socket', 'socket', '16', '3', '0']], {
        before: `python3 -c ${shq(py)}`,
        afterScript: 'echo "ADDRS $(ip -o addr show | awk \'{print $2, $4}\' | tr "\\n" ";")"; test -e /sys/class/net && echo "SYS present" || echo "SYS absent"',
      });
      const dump = expectOk(calls, 'dump', res);
      assert.deepEqual(dump.extra, ['1', 'lo'], `links inside the box: ${dump.line}`);
      // Reading interfaces over NETLINK_ROUTE is legitimate and allowed.
      expectOk(calls, 'netlink-route-socket', res);
      const t = tagged(res.stdout);
      assert.equal(t.get('IFACES'), "[(1, 'lo')]");
      assert.equal(t.get('LOFLAGS'), 'UP LOOPBACK RUNNING');
      const addrs = t.get('ADDRS').split(';').filter(Boolean).sort();
      assert.ok(addrs.includes('lo 127.0.0.1/8'), t.get('ADDRS'));
      for (const a of addrs) assert.match(a, /^lo (127\.0\.0\.1\/8|::1\/128)$/, `unexpected address inside: ${a}`);
      assert.equal(t.get('SYS'), 'absent');
    });

    test('TCP and UDP to the host, on its loopback and on its own addresses, never arrive', async (t) => {
      const lo4 = await hostTcpServer('127.0.0.1');
      const lo6 = await hostTcpServer('::1');
      const any = await hostTcpServer('::'); // dual stack: every address of this host
      const ulo4 = await hostUdpSocket('127.0.0.1');
      const ulo6 = await hostUdpSocket('::1');
      const uany = await hostUdpSocket('::');
      const calls = [
        ['tcp-lo4', 'tcp-connect', '127.0.0.1', lo4.port],
        ['tcp-lo6', 'tcp-connect', '::1', lo6.port],
        ['tcp-lo4-any', 'tcp-connect', '127.0.0.1', any.port],
        ['udp-lo4', 'udp-send', '127.0.0.1', ulo4.port],
        ['udp-lo6', 'udp-send', '::1', ulo6.port],
        ['udp-lo4-any', 'udp-send', '127.0.0.1', uany.port],
      ];
      if (own.v4) calls.push(['tcp-own4', 'tcp-connect', own.v4, any.port], ['udp-own4', 'udp-send', own.v4, uany.port]);
      else t.diagnostic('this host has no non-loopback IPv4 address: that part is not exercised');
      if (own.v6) calls.push(['tcp-own6', 'tcp-connect', own.v6, any.port], ['udp-own6', 'udp-send', own.v6, uany.port]);
      else t.diagnostic('this host has no global IPv6 address: that part is not exercised');

      // The host's servers really are reachable from the host itself.
      await new Promise((resolve, reject) => net.connect(lo4.port, '127.0.0.1', resolve).on('error', reject).on('connect', function () { this.destroy(); }));
      await sleep(50);
      assert.equal(lo4.connections, 1, 'control: the host server accepts host connections');
      lo4.connections = 0;

      const { res, calls: got } = await probeBox(mode, calls);
      // The box has a loopback of its own, where nobody listens.
      expectErr(got, 'tcp-lo4', ['ECONNREFUSED'], res);
      expectErr(got, 'tcp-lo6', ['ECONNREFUSED'], res);
      expectErr(got, 'tcp-lo4-any', ['ECONNREFUSED'], res);
      // No route leaves the box.
      if (own.v4) {
        expectErr(got, 'tcp-own4', ['ENETUNREACH'], res);
        expectErr(got, 'udp-own4', ['ENETUNREACH'], res);
      }
      if (own.v6) {
        expectErr(got, 'tcp-own6', ['ENETUNREACH'], res);
        expectErr(got, 'udp-own6', ['ENETUNREACH'], res);
      }
      await sleep(300);
      assert.deepEqual(
        { lo4: lo4.connections, lo6: lo6.connections, any: any.connections, ulo4: ulo4.messages, ulo6: ulo6.messages, uany: uany.messages },
        { lo4: 0, lo6: 0, any: 0, ulo4: 0, ulo6: 0, uany: 0 },
        'something from the box reached a host socket',
      );
    });

    test('raw, ICMP, packet, vsock and other socket families refused; netlink cannot configure', async () => {
      const calls = [
        ['raw-icmp', 'socket-raw-icmp'],
        ['raw-icmp6', 'socket', '10', '3', '58'],
        ['raw-ip', 'socket', '2', '3', '255'],
        ['ping-lo4', 'ping-icmp', '127.0.0.1'],
        ['ping-lo6', 'ping-icmp', '::1'],
        ['packet-raw', 'socket', '17', '3', '768'],
        ['packet-dgram', 'socket', '17', '2', '768'],
        ['vsock-stream', 'socket', '40', '1', '0'],
        ['vsock-dgram', 'socket', '40', '2', '0'],
        ['af-key', 'socket', '15', '3', '2'],
        ['af-can', 'socket', '29', '3', '1'],
        ['af-tipc', 'socket', '30', '5', '0'],
        ['af-bluetooth', 'socket', '31', '3', '0'],
        ['af-alg', 'socket', '38', '5', '0'],
        ['af-xdp', 'socket', '44', '3', '0'],
        ['netlink-audit', 'netlink-audit'],
        ['netlink-sock-diag', 'socket', '16', '3', '4'],
        ['netlink-netfilter', 'socket', '16', '3', '12'],
        ['netlink-uevent', 'socket', '16', '3', '15'],
        ['netlink-generic', 'socket', '16', '3', '16'],
        ['netlink-link-add', 'netlink-link-add'],
        ['netlink-addr-add', 'netlink-addr-add'],
      ];
      if (own.v4) calls.push(['ping-own4', 'ping-icmp', own.v4]);
      if (own.v6) calls.push(['ping-own6', 'ping-icmp', own.v6]);
      const { res, calls: got } = await probeBox(mode, calls, { afterScript: 'echo "LINKS $(ip -o link show | wc -l)"; echo "ADDRS $(ip -o addr show | wc -l)"' });
      for (const key of ['raw-icmp', 'raw-icmp6', 'raw-ip']) expectErr(got, key, ['EPERM'], res);
      // ICMP datagram sockets: net.ipv4.ping_group_range of a fresh netns admits nobody.
      for (const key of ['ping-lo4', 'ping-lo6', ...(own.v4 ? ['ping-own4'] : []), ...(own.v6 ? ['ping-own6'] : [])]) {
        const r = resultOf(got, key, res);
        assert.ok(!r.ok, `${key}: ICMP echo was sent: ${r.line}`);
      }
      for (const key of [
        'packet-raw', 'packet-dgram', 'vsock-stream', 'vsock-dgram', 'af-key', 'af-can', 'af-tipc', 'af-bluetooth', 'af-alg', 'af-xdp',
        'netlink-audit', 'netlink-sock-diag', 'netlink-netfilter', 'netlink-uevent', 'netlink-generic',
      ]) {
        expectErr(got, key, ['EPERM'], res);
      }
      // Creating a link needs CAP_NET_ADMIN (EPERM); a kernel without the dummy
      // driver may answer EOPNOTSUPP first. Adding an address is always EPERM.
      expectErr(got, 'netlink-link-add', ['EPERM', 'EOPNOTSUPP'], res);
      expectErr(got, 'netlink-addr-add', ['EPERM'], res);
      const t = tagged(res.stdout);
      assert.equal(t.get('LINKS'), '1', 'no link was added');
      assert.ok(!res.stdout.includes('10.99.0.1'), 'no address was added');
    });

    test('legitimate: servers started inside the box are reachable inside, even on a port the host uses', async () => {
      const host = await hostTcpServer('127.0.0.1');
      const py = [
        'import socket, urllib.request, time, sys',
        'port = int(sys.argv[1])',
        'for _ in range(100):',
        '    try:',
        '        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/served.txt", timeout=5).read().decode().strip(); break',
        '    except OSError: time.sleep(0.05)',
        'print("HTTP", body)',
        'for fam, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):',
        '    r = socket.socket(fam, socket.SOCK_DGRAM); r.bind((addr, 0)); r.settimeout(5)',
        '    s = socket.socket(fam, socket.SOCK_DGRAM); s.sendto(b"dgram", r.getsockname())',
        '    print("UDP" + str(fam), r.recv(16).decode())',
        'a = socket.socket(socket.AF_UNIX); a.bind("\\0lg-inside"); a.listen()',
        'b = socket.socket(socket.AF_UNIX); b.connect("\\0lg-inside"); c, _ = a.accept(); b.send(b"abs"); print("ABSTRACT", c.recv(3).decode())',
      ].join('\n');
      const { res, calls } = await probeBox(
        mode,
        [
          ['listen-host-port', 'tcp-listen', host.port],
          ['connect-inside', 'tcp-connect', '127.0.0.1', host.port],
        ],
        {
          before: `echo served-inside > served.txt; python3 -m http.server --bind 127.0.0.1 ${host.port} >/dev/null 2>&1 & SERVER=$!; python3 -c ${shq(py)} ${host.port}`,
          afterScript: 'kill $SERVER',
        },
      );
      const t = tagged(res.stdout);
      assert.equal(t.get('HTTP'), 'served-inside', res.stderr);
      assert.equal(t.get(`UDP${2}`), 'dgram');
      assert.equal(t.get(`UDP${10}`), 'dgram');
      assert.equal(t.get('ABSTRACT'), 'abs');
      // The http.server holds the port: the probe's own bind fails, its connect works.
      expectErr(calls, 'listen-host-port', ['EADDRINUSE'], res);
      expectOk(calls, 'connect-inside', res);
      assert.equal(host.connections, 0, 'the box reached the host server holding the same port number');
    });

    test('Unix sockets of the host, abstract or on disk, are out of reach', async () => {
      const abstractName = `latchgate-test-${process.pid}-${mode}`;
      const abs = await hostUnixServer(`\0${abstractName}`);
      const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-hostsock-'));
      extraDirs.push(dir);
      chmodSync(dir, 0o777);
      const sockPath = path.join(dir, 'agent.sock');
      const onDisk = await hostUnixServer(sockPath);
      chmodSync(sockPath, 0o777);
      const targets = [
        ['abstract', `\0${abstractName}`],
        ['hostpath', sockPath],
        ['x11-abstract', '\0/tmp/.X11-unix/X0'],
        ['x11', '/tmp/.X11-unix/X0'],
        ['docker', '/var/run/docker.sock'],
        ['docker-run', '/run/docker.sock'],
        ['containerd', '/run/containerd/containerd.sock'],
        ['podman', '/run/podman/podman.sock'],
        ['dbus-system', '/run/dbus/system_bus_socket'],
        ['dbus-user', '/run/user/0/bus'],
        ['systemd-private', '/run/systemd/private'],
      ];
      const py = [
        'import socket, json, sys',
        'for key, addr in json.loads(sys.argv[1]):',
        '    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):',
        '        s = socket.socket(socket.AF_UNIX, kind)',
        '        try:',
        '            s.connect(addr); print("UNIX", key, kind, "OK")',
        '        except OSError as e:',
        '            print("UNIX", key, kind, "ERR", e.errno)',
        // A datagram socketpair then connect(): the same walls.
        'a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)',
        'for key, addr in json.loads(sys.argv[1])[:2]:',
        '    try:',
        '        a.connect(addr); print("PAIR", key, "OK")',
        '    except OSError as e:',
        '        print("PAIR", key, "ERR", e.errno)',
      ].join('\n');
      const res = await sh(mode, `python3 -c ${shq(py)} ${shq(JSON.stringify(targets))}`, { workspace: makeWorkspace('unix'), timeoutMs: 30000 });
      assert.equal(res.code, 0, res.stderr);
      const lines = res.stdout.split('\n').filter((l) => l.startsWith('UNIX ') || l.startsWith('PAIR '));
      assert.equal(lines.length, targets.length * 2 + 2, res.stdout);
      for (const line of lines) assert.match(line, / ERR \d+$/, `a host Unix socket was reached: ${line}`);
      await sleep(100);
      assert.equal(abs.connections, 0, 'the host abstract socket accepted a connection from the box');
      assert.equal(onDisk.connections, 0, 'the host Unix socket accepted a connection from the box');
    });
  });
}
