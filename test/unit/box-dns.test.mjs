// The box's resolver (src/egress/box-dns.ts, dns-message.ts): every query is
// answered at once with REFUSED (an Extended DNS Error saying why to a query
// that speaks EDNS), never with an address; what it cannot read gets FORMERR
// or NOTIMP, a response or a runt is dropped; each name asked is one
// egress_dns event; a flood is answered at a bounded rate. The packets come
// from the box, so the parser is fuzzed (seeded), and the answers are read
// back by an independent parser here and by Node's own resolver (c-ares).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import net from 'node:net';
import { BoxDns } from '../../dist/egress/box-dns.js';
import { HostAllowlist } from '../../dist/egress/allowlist.js';
import { buildAnswer, parseQuery, MAX_ANSWER } from '../../dist/egress/dns-message.js';
import { checkEvent, undeclaredFields } from '../../dist/core/event-catalogue.js';
import { prng } from '../fixtures/unit/helpers.mjs';

// ---------------------------------------------------------------------------
// Packets, built and read here without the code under test.

const label = (l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'latin1')]);
const wireName = (name) => Buffer.concat([...name.split('.').filter(Boolean).map(label), Buffer.from([0])]);
/** An OPT record: udp size, version, and options as [code, data] pairs. */
function opt({ size = 1232, version = 0, options = [] } = {}) {
  const rdata = Buffer.concat(options.map(([code, data]) => Buffer.concat([u16(code), u16(data.length), data])));
  return Buffer.concat([Buffer.from([0]), u16(41), u16(size), Buffer.from([0, version, 0, 0]), u16(rdata.length), rdata]);
}
function u16(n) {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
/** A query: id, flags (RD by default), one question, the given additional records. */
function query(name, { id = 0x1234, type = 1, flags = 0x0100, additional = [], qd = 1, an = 0 } = {}) {
  const header = Buffer.concat([u16(id), u16(flags), u16(qd), u16(an), u16(0), u16(additional.length)]);
  return Buffer.concat([header, wireName(name), u16(type), u16(1), ...additional]);
}

/** Reads a whole answer, strictly: every byte accounted for. */
function readAnswer(b) {
  assert.ok(b.length >= 12, 'a header');
  const r = { id: b.readUInt16BE(0), flags: b.readUInt16BE(2), qd: b.readUInt16BE(4), an: b.readUInt16BE(6), ns: b.readUInt16BE(8), ar: b.readUInt16BE(10), question: null, opt: null };
  r.qr = (r.flags & 0x8000) !== 0;
  r.rcode = r.flags & 0xf;
  let at = 12;
  const name = () => {
    const labels = [];
    for (;;) {
      const len = b[at++];
      assert.ok(len !== undefined && len < 64, 'an uncompressed label');
      if (len === 0) return labels.join('.');
      labels.push(b.subarray(at, at + len).toString('latin1'));
      at += len;
    }
  };
  if (r.qd === 1) {
    r.question = { name: name(), type: b.readUInt16BE(at), class: b.readUInt16BE(at + 2) };
    at += 4;
  }
  assert.equal(r.an + r.ns, 0, 'no answer or authority records, ever');
  for (let i = 0; i < r.ar; i++) {
    assert.equal(name(), '', 'OPT is owned by the root');
    assert.equal(b.readUInt16BE(at), 41, 'the only additional record is OPT');
    const ttl = b.readUInt32BE(at + 4);
    const len = b.readUInt16BE(at + 8);
    at += 10;
    r.opt = { extRcode: ttl >>> 24, options: [] };
    const end = at + len;
    while (at < end) {
      const code = b.readUInt16BE(at);
      const olen = b.readUInt16BE(at + 2);
      r.opt.options.push({ code, data: b.subarray(at + 4, at + 4 + olen) });
      at += 4 + olen;
    }
    assert.equal(at, end);
  }
  assert.equal(at, b.length, 'no bytes after the last record');
  r.ede = r.opt?.options.find((o) => o.code === 15);
  if (r.ede) r.ede = { code: r.ede.data.readUInt16BE(0), text: r.ede.data.subarray(2).toString('utf8') };
  return r;
}

// ---------------------------------------------------------------------------
// The parser and the answer

test('a query is answered REFUSED with its question; with EDNS an Extended DNS Error says why', () => {
  const plain = parseQuery(query('Registry.NPMJS.org'));
  assert.equal(plain.kind, 'query');
  assert.equal(plain.query.question.name, 'registry.npmjs.org', 'lower-cased presentation form');
  const a = readAnswer(buildAnswer(plain.query, 5, { code: 18, text: 'why' }));
  assert.deepEqual([a.id, a.qr, a.rcode, a.qd, a.ar], [0x1234, true, 5, 1, 0], 'no OPT to a query without one');
  assert.deepEqual(a.question, { name: 'Registry.NPMJS.org', type: 1, class: 1 }, 'the question echoed as asked');
  assert.equal(a.flags & 0x0100, 0x0100, 'RD copied');
  assert.equal(a.flags & 0x0080, 0, 'RA not set: nothing is resolved here');

  const edns = parseQuery(query('x.example', { type: 28, additional: [opt()] }));
  assert.equal(edns.kind, 'query');
  const long = buildAnswer(edns.query, 5, { code: 18, text: `latchgate: \u0007 ${'y'.repeat(600)}` });
  const b = readAnswer(long);
  assert.equal(b.ar, 1);
  assert.equal(b.ede.code, 18);
  assert.match(b.ede.text, /^latchgate: \? y+$/, 'printable ASCII only');
  assert.equal(long.length, MAX_ANSWER, 'the text is cut, so the answer fits 512 bytes');
});

test('what cannot be answered normally: FORMERR, NOTIMP, BADVERS, or dropped', () => {
  const cases = [
    [query('a.example', { qd: 0 }), 'error', 1],
    [query('a.example', { qd: 2 }), 'error', 1],
    [query('a.example', { an: 1 }), 'error', 1],
    [Buffer.concat([query('a.example'), Buffer.from([0])]), 'error', 1], // a byte after the question
    [query('a.example', { additional: [opt(), opt()] }), 'error', 1], // two OPT records
    [query('a.example', { additional: [Buffer.concat([wireName('a'), opt().subarray(1)])] }), 'error', 1], // OPT not at the root
    [Buffer.concat([query('a.example').subarray(0, 12), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]), 'error', 1], // a compression pointer
    [Buffer.concat([query('a.example').subarray(0, 12), Buffer.from([0x40, 0, 0, 1, 0, 1])]), 'error', 1], // a reserved label type
    [Buffer.concat([query('a.example').subarray(0, 12), Buffer.from([5, 0x61])]), 'error', 1], // a label past the end
    [Buffer.concat([query('a.example').subarray(0, 12), ...Array.from({ length: 5 }, () => label('a'.repeat(63))), Buffer.from([0, 0, 1, 0, 1])]), 'error', 1], // a name over 255 bytes
    [query('a.example', { flags: 0x2800 }), 'error', 4], // opcode 5 (UPDATE)
    [query('a.example', { additional: [opt({ version: 1 })] }), 'error', 16],
    [query('a.example', { flags: 0x8100 }), 'drop'], // a response
    [Buffer.from([1, 2, 3]), 'drop'],
  ];
  for (const [packet, kind, rcode] of cases) {
    const p = parseQuery(packet);
    assert.equal(p.kind, kind, `${packet.toString('hex')}: ${JSON.stringify(p)}`);
    if (kind === 'drop') continue;
    assert.equal(p.rcode, rcode, p.reason);
    assert.ok(p.reason.length > 0);
    const a = readAnswer(buildAnswer(p, p.rcode));
    assert.equal(a.id, 0x1234);
    assert.equal((a.opt?.extRcode ?? 0) * 16 + a.rcode, rcode);
  }
  // A name of exactly 255 bytes is a name.
  const max = Buffer.concat([query('a').subarray(0, 12), ...Array.from({ length: 4 }, () => label('a'.repeat(62))), label('a'), Buffer.from([0, 0, 1, 0, 1])]);
  assert.equal(parseQuery(max).kind, 'query');
  // Bytes that are not letters, digits, '-' or '_' are shown as \DDD: the recorded name is printable.
  assert.equal(parseQuery(query('a\u0000b\u001b[31m.ex ample')).query.question.name, 'a\\000b\\027\\09131m.ex\\032ample');
});

test('fuzz (seeded): 20000 mutated and random packets never throw; every answer is a well-formed refusal with no record', () => {
  const seed = 0xd15ea5e;
  const r = prng(seed);
  const names = ['registry.npmjs.org', 'a.b', 'x', '', 'api.example.test', 'z'.repeat(63) + '.com'];
  let answered = 0;
  for (let i = 0; i < 20000; i++) {
    let p = query(r.pick(names), { id: r.below(65536), type: r.below(300), additional: r.chance(0.5) ? [opt({ size: r.below(65536), version: r.chance(0.9) ? 0 : r.below(256), options: r.chance(0.3) ? [[r.below(20), Buffer.alloc(r.below(8))]] : [] })] : [] });
    const mode = r.below(5);
    if (mode === 0) p = Buffer.from(Array.from({ length: r.below(600) }, () => r.below(256)));
    else if (mode === 1) p = p.subarray(0, r.below(p.length + 1));
    else if (mode === 2) for (let k = 0; k <= r.below(4); k++) p[r.below(p.length)] = r.below(256);
    else if (mode === 3) p = Buffer.concat([p, Buffer.from(Array.from({ length: 1 + r.below(30) }, () => r.below(256)))]);
    let parsed;
    assert.doesNotThrow(() => (parsed = parseQuery(p)), `seed ${seed} packet ${i} ${p.toString('hex')}`);
    if (parsed.kind === 'drop') {
      assert.ok(p.length < 12 || (p[2] & 0x80) !== 0, `seed ${seed} packet ${i}: only runts and responses are dropped (${parsed.reason})`);
      continue;
    }
    const rcode = parsed.kind === 'query' ? 5 : parsed.rcode;
    const out = buildAnswer(parsed.kind === 'query' ? parsed.query : parsed, rcode, { code: 18, text: 'latchgate: no DNS here' });
    assert.ok(out.length <= 512, `seed ${seed} packet ${i}: an answer every client takes`);
    const a = readAnswer(out);
    assert.equal(a.id, p.readUInt16BE(0));
    assert.ok(a.qr);
    assert.equal((a.opt?.extRcode ?? 0) * 16 + a.rcode, rcode);
    answered++;
  }
  assert.ok(answered > 10000, `most packets are answered (${answered})`);
});

// ---------------------------------------------------------------------------
// The server

async function startDns(t, opts = {}) {
  const events = [];
  const dns = new BoxDns({ allowlist: opts.allowlist === undefined ? new HostAllowlist(['api.example.test', '*.allowed.test']) : opts.allowlist, record: (e) => events.push(e), ...opts });
  const ports = await dns.listen('127.0.0.1', 0);
  t.after(() => dns.close());
  const udp = dgram.createSocket('udp4');
  await new Promise((r) => udp.bind(0, '127.0.0.1', r));
  t.after(() => udp.close());
  /** Sends a packet; resolves the answer, or null after ms without one. */
  const ask = (packet, ms = 1000) =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        udp.off('message', on);
        resolve(null);
      }, ms);
      const on = (m) => {
        clearTimeout(timer);
        resolve(m);
      };
      udp.once('message', on);
      udp.send(packet, ports.udp, '127.0.0.1');
    });
  return { dns, ports, events, ask };
}

test('UDP: REFUSED at once; the text says whether the name would be allowed through the proxy and what would allow it; each name recorded', async (t) => {
  const { ports, events, ask } = await startDns(t);
  const denied = readAnswer(await ask(query('registry.npmjs.org', { additional: [opt()] })));
  assert.equal(denied.rcode, 5);
  assert.equal(denied.ede.code, 18);
  assert.match(denied.ede.text, /^latchgate: this box resolves no names; to reach registry\.npmjs\.org, ask the user who started it for --allow-host registry\.npmjs\.org, then connect through HTTPS_PROXY by name$/);
  const allowed = readAnswer(await ask(query('deep.x.allowed.test', { type: 28, additional: [opt()] })));
  assert.equal(allowed.rcode, 5, 'an allowlisted name is refused too: the box resolves nothing');
  assert.match(allowed.ede.text, /deep\.x\.allowed\.test it is allowed: connect through HTTPS_PROXY by name$/);
  assert.equal(readAnswer(await ask(query('a.example', { flags: 0x2800 }))).rcode, 4);
  assert.equal(await ask(query('a.example', { flags: 0x8100 }), 300), null, 'a response is not answered');

  assert.deepEqual(events.map((e) => [e.details.name, e.details.qtype, e.details.reason, e.details.rcode, e.details.allowlisted]), [
    ['registry.npmjs.org', 'A', 'dns_refused', 'REFUSED', false],
    ['deep.x.allowed.test', 'AAAA', 'dns_refused', 'REFUSED', true],
    ['a.example', 'A', 'malformed_query', 'NOTIMP', false],
  ]);
  for (const e of events) {
    assert.equal(e.event_type, 'egress_dns');
    assert.equal(e.decision, 'deny');
    assert.equal(checkEvent(e), null);
    assert.deepEqual(undeclaredFields(e), []);
  }
  assert.match(events[2].details.detail, /opcode 5/);

  // Node's own stub resolver (c-ares) reads the answer: refused, at once, never an address.
  const resolver = new Resolver({ timeout: 5000, tries: 1 });
  resolver.setServers([`127.0.0.1:${ports.udp}`]);
  await assert.rejects(resolver.resolve4('api.example.test'), (e) => e.code === 'EREFUSED');
  await assert.rejects(resolver.resolveAny('example.com'), (e) => e.code === 'EREFUSED');
});

test('a box without a proxy: the text says --allow-host gives it one', async (t) => {
  const { ask } = await startDns(t, { allowlist: null });
  const a = readAnswer(await ask(query('api.example.test', { additional: [opt()] })));
  assert.match(a.ede.text, /--allow-host api\.example\.test, then connect through HTTPS_PROXY by name \(the box then gets one\)$/);
});

test('TCP (RFC 7766 framing): several queries on one connection, answered in order; a garbage length closes it', async (t) => {
  const { ports, events } = await startDns(t);
  const frame = (m) => Buffer.concat([u16(m.length), m]);
  const got = await new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const s = net.connect(ports.tcp, '127.0.0.1', () => {
      // Two queries in one write, a third split across writes.
      s.write(Buffer.concat([frame(query('one.example', { id: 1 })), frame(query('two.example', { id: 2 }))]));
      const third = frame(query('three.example', { id: 3, additional: [opt()] }));
      s.write(third.subarray(0, 5));
      setTimeout(() => s.write(third.subarray(5)), 50);
    });
    s.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const answers = [];
      for (let at = 0; at + 2 <= buf.length && at + 2 + buf.readUInt16BE(at) <= buf.length; at += 2 + buf.readUInt16BE(at)) answers.push(buf.subarray(at + 2, at + 2 + buf.readUInt16BE(at)));
      if (answers.length === 3) {
        s.end();
        resolve(answers.map(readAnswer));
      }
    });
  });
  assert.deepEqual(got.map((a) => [a.id, a.rcode]), [[1, 5], [2, 5], [3, 5]]);
  assert.match(got[2].ede.text, /three\.example/);
  assert.deepEqual(events.map((e) => [e.details.name, e.details.transport]), [['one.example', 'tcp'], ['two.example', 'tcp'], ['three.example', 'tcp']]);
  // A runt frame: nothing to answer, the connection is closed.
  const closed = await new Promise((resolve) => {
    const s = net.connect(ports.tcp, '127.0.0.1', () => s.write(frame(Buffer.from([1, 2, 3]))));
    s.on('close', () => resolve(true));
    s.on('error', () => undefined);
  });
  assert.ok(closed);
});

test('a flood is answered at a bounded rate: the excess dropped unanswered and counted, the rest answered and recorded', async (t) => {
  let now = 1_000_000;
  const { dns, ask, events } = await startDns(t, { limits: { queriesPerSecond: 10, burst: 5 }, now: () => now });
  const answers = [];
  for (let i = 0; i < 8; i++) answers.push(await ask(query(`n${i}.example`, { id: i }), 200));
  assert.deepEqual(answers.map((a) => a !== null), [true, true, true, true, true, false, false, false], 'the burst, then nothing');
  assert.equal(events.length, 5, 'what was not answered is not recorded either');
  now += 1000; // a second later: 10 more
  assert.ok(await ask(query('later.example')), 'answered again after the rate refills');
  const s = dns.stats();
  assert.equal(s.answered, 6);
  assert.equal(s.dropped, 3);
});

test('TCP connections are capped: the one past the cap is closed at once, the others stay', { timeout: 15000 }, async (t) => {
  const { dns, ports } = await startDns(t, { limits: { maxTcpConnections: 2, tcpIdleMs: 60_000 } });
  const sockets = [];
  const open = () =>
    new Promise((resolve) => {
      const s = net.connect(ports.tcp, '127.0.0.1', () => setTimeout(() => resolve(s), 50));
      s.on('error', () => undefined);
      s.gone = new Promise((r) => s.on('close', r));
      sockets.push(s);
    });
  await open();
  await open();
  for (let i = 0; i < 100 && dns.stats().tcpConnections < 2; i++) await new Promise((r) => setTimeout(r, 20));
  const third = await open();
  await third.gone;
  assert.equal(dns.stats().tcpConnections, 2, 'the first two are still served');
  for (const s of sockets) s.destroy();
});

test('a TCP client that does not read its answers is cut off (they would pile up in the launcher)', { timeout: 30000 }, async (t) => {
  const { ports, events } = await startDns(t, { limits: { queriesPerSecond: 1_000_000, burst: 1_000_000 } });
  // Answers of 512 bytes (the longest name, and EDNS: the reason's text fills the rest), more of them than the kernel's socket buffers hold.
  const m = query(Array.from({ length: 4 }, () => 'u'.repeat(62)).join('.'), { additional: [opt()] });
  const frames = Buffer.concat(Array.from({ length: 60_000 }, () => Buffer.concat([u16(m.length), m])));
  const closed = await new Promise((resolve) => {
    const s = net.connect(ports.tcp, '127.0.0.1', () => {
      s.pause(); // never reads
      s.write(frames);
    });
    s.on('error', () => undefined);
    s.on('close', () => resolve(true));
  });
  assert.ok(closed);
  assert.ok(events.length < 60_000, `cut off before every query was answered (${events.length})`);
});

test('an idle TCP connection is closed', { timeout: 15000 }, async (t) => {
  const { dns, ports } = await startDns(t, { limits: { tcpIdleMs: 200 } });
  await new Promise((resolve) => {
    const s = net.connect(ports.tcp, '127.0.0.1');
    s.on('error', () => undefined);
    s.on('close', resolve);
  });
  for (let i = 0; i < 100 && dns.stats().tcpConnections > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(dns.stats().tcpConnections, 0);
});

test('limits are checked', () => {
  assert.throws(() => new BoxDns({ allowlist: null, record() {}, limits: { burst: 0 } }), /limits\.burst must be a positive integer/);
  assert.throws(() => new BoxDns({ allowlist: null }), /record must be a function/);
});
