// Counted denials (src/ledger/coalesce.ts, src/ledger/denial-kinds.ts) on an
// injected clock: the first of a kind in full at once, repeats counted into
// one summary per interval, a new kind in full even mid-flood, caps on kinds
// and samples that say when they were hit, close() writing what is counted,
// and a seeded property test that the full events plus the summaries' counts
// are exactly the denials recorded. A failure prints its seed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DenialCoalescer } from '../../dist/ledger/coalesce.js';
import { denialKind } from '../../dist/ledger/denial-kinds.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { KeyStore } from '../../dist/keys/store.js';
import { verifyLedger } from '../../dist/ledger/verify.js';
import { prng, tempDir } from '../fixtures/unit/helpers.mjs';

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 0xc0_a1_e5;
const I = 1000;

/** A coalescer on a clock the test moves, writing into an array. */
function rig(over = {}) {
  const clock = { t: 1_700_000_000_000 };
  const written = [];
  const c = new DenialCoalescer({ write: (e) => written.push(e), classify: denialKind, intervalMs: I, timer: false, now: () => clock.t, ...over });
  return { c, clock, written };
}

const refused = (host, reason = 'host_not_allowed', extra = {}) => ({
  event_type: 'egress',
  decision: 'deny',
  subject: { principal: 'box' },
  details: { host, port: 443, resolved_address: null, bytes_up: 0, bytes_down: 0, duration_ms: 1, reason, transport: 'fd', status: 403, ...extra },
});

const summaries = (w) => w.filter((e) => e.details?.coalesced);
const fulls = (w) => w.filter((e) => !e.details?.coalesced);
const total = (w) => w.reduce((n, e) => n + (e.details?.coalesced?.count ?? 1), 0);

test('the first denial of a kind is written in full at once; the repeats of the interval become one summary', () => {
  const { c, clock, written } = rig();
  const first = refused('denied.example.test');
  c.record(first, 'box');
  assert.equal(written.length, 1);
  assert.equal(written[0], first, 'the very event, not a copy or a summary');
  for (let i = 0; i < 500; i++) {
    clock.t += 1;
    c.record(refused('denied.example.test', 'host_not_allowed', { target: `t${i % 3}` }), 'box');
  }
  assert.equal(written.length, 1, 'repeats inside the interval are only counted');
  clock.t += I; // past the interval's end
  c.sweep();
  assert.equal(written.length, 2);
  const s = written[1];
  assert.equal(s.event_type, 'egress');
  assert.equal(s.decision, 'deny');
  assert.deepEqual(s.subject, { principal: 'box' });
  assert.deepEqual({ ...s.details, coalesced: undefined }, { host: 'denied.example.test', port: 443, reason: 'host_not_allowed', transport: 'fd', status: 403, coalesced: undefined });
  const k = s.details.coalesced;
  assert.equal(k.count, 500);
  assert.equal(k.interval_ms, I);
  assert.equal(k.first_at, new Date(1_700_000_000_001).toISOString());
  assert.equal(k.last_at, new Date(1_700_000_000_500).toISOString());
  assert.deepEqual(k.samples, ['t0', 't1', 't2']);
  assert.equal(k.samples_dropped, undefined);
  assert.equal(total(written), 501, 'full events plus counts = denials');
});

test('interval boundaries: the last millisecond counts in, the end starts a new interval, a quiet interval forgets the kind', () => {
  const { c, clock, written } = rig();
  const t0 = clock.t;
  c.record(refused('a.test'), 'box'); // opens [t0, t0 + I)
  clock.t = t0 + I - 1;
  c.record(refused('a.test'), 'box');
  assert.equal(written.length, 1, 'the last millisecond is inside the interval');
  clock.t = t0 + I;
  c.record(refused('a.test'), 'box'); // ends the first interval, counts into the second
  assert.equal(written.length, 2, 'the interval ended: its summary is written before the new denial is counted');
  assert.equal(written[1].details.coalesced.count, 1);
  clock.t = t0 + 2 * I - 1;
  c.sweep();
  assert.equal(written.length, 2, 'the second interval is not over yet');
  clock.t = t0 + 2 * I;
  c.sweep();
  assert.equal(written.length, 3);
  assert.equal(written[2].details.coalesced.count, 1);
  assert.equal(written[2].details.coalesced.first_at, new Date(t0 + I).toISOString());
  clock.t = t0 + 3 * I; // a whole interval without a denial of the kind
  c.sweep();
  assert.equal(written.length, 3, 'nothing to summarise');
  clock.t += 1;
  const again = refused('a.test');
  c.record(again, 'box');
  assert.equal(written.length, 4);
  assert.equal(written[3], again, 'after a quiet interval the kind is new again: in full');
  assert.equal(total(written), 4);
});

test('a different denial during a flood is written in full at once: another reason, another target, another source', () => {
  const { c, clock, written } = rig();
  for (let i = 0; i < 100; i++) c.record(refused('flood.test'), 'box');
  assert.equal(written.length, 1);
  const other = [refused('flood.test', 'literal_ip'), refused('other.test'), refused('flood.test', 'host_not_allowed', { port: 8443 }), refused('flood.test', 'host_not_allowed', { transport: 'unix' }), refused('flood.test', 'host_not_allowed', { status: 503 })];
  for (const e of other) {
    clock.t += 1;
    c.record(e, 'box');
    assert.equal(written.at(-1), e, `in full at once: ${JSON.stringify(e.details)}`);
  }
  const fromAnother = refused('flood.test');
  c.record(fromAnother, 'another-box');
  assert.equal(written.at(-1), fromAnother, 'kinds are per source: another box is not counted into this one');
  c.record(refused('flood.test'), 'box');
  assert.equal(written.length, 7, 'the flood is still only counted');
  c.close();
  assert.equal(summaries(written).length, 1);
  assert.equal(summaries(written)[0].details.coalesced.count, 100);
  assert.equal(total(written), 107);
});

test('allowed events, errors of forwarded requests and refusals within a session are never counted', () => {
  const { c, written } = rig();
  const never = [
    { event_type: 'egress', decision: 'allow', details: { host: 'api.test', port: 443, reason: 'client_closed', transport: 'fd', status: 200 } },
    { event_type: 'credential_proxy', decision: 'error', details: { route: 'fake', method: 'GET', path: '/x', status: 502, reason: 'upstream_timeout' } },
    { event_type: 'action_call', decision: 'deny', subject: { principal: 'p', session_id: 's1' }, action: { action_id: 'a' }, error: { code: 'policy_denied', message: 'no' } },
    { event_type: 'action_call', decision: 'allow', subject: { principal: 'p', session_id: 's1' }, action: { action_id: 'a' } },
    { event_type: 'approval_granted', decision: 'allow', details: {} },
    { event_type: 'lease_issued', decision: 'allow', subject: { principal: 'p' } },
    { event_type: 'egress', decision: 'deny', details: { host: 'x' } }, // no reason: not one of ours, kept whole
  ];
  for (let i = 0; i < 3; i++) for (const e of never) c.record(e, 'src');
  assert.equal(written.length, 3 * never.length, 'every one written in full');
  c.close();
  assert.equal(summaries(written).length, 0);
});

test("the gate's unauthenticated refusals are counted per kind: code and route, code and action", () => {
  const { c, written } = rig();
  const missing = (action) => ({ event_type: 'action_call', decision: 'deny', subject: { principal: 'tester', identity_method: 'unix' }, action: { action_id: action }, error: { code: 'missing_auth_header', message: 'no Authorization' } });
  const notFound = (route) => ({ event_type: 'request_refused', decision: 'deny', subject: { principal: 'tester', identity_method: 'unix' }, error: { code: 'route_not_found', message: `no route ${route}` }, details: { route } });
  for (let i = 0; i < 10; i++) c.record(missing('t_ok'), 'u');
  c.record(missing('t_other'), 'u');
  for (let i = 0; i < 10; i++) c.record(notFound('GET /x'), 'u');
  c.record({ event_type: 'action_call', decision: 'error', subject: { principal: 'tester' }, action: { action_id: 't_ok' }, error: { code: 'draining', message: 'draining' } }, 'u');
  assert.deepEqual(fulls(written).map((e) => `${e.event_type} ${e.error.code}`), ['action_call missing_auth_header', 'action_call missing_auth_header', 'request_refused route_not_found', 'action_call draining']);
  c.close();
  const s = summaries(written);
  assert.deepEqual(s.map((e) => [e.event_type, e.error, e.action ?? e.details.route, e.details.coalesced.count]), [
    ['action_call', { code: 'missing_auth_header' }, { action_id: 't_ok' }, 9],
    ['request_refused', { code: 'route_not_found' }, 'GET /x', 9],
  ]);
  assert.deepEqual(s[0].subject, { principal: 'tester', identity_method: 'unix' });
  assert.deepEqual(s[0].details.coalesced.samples, ['no Authorization']);
  assert.equal(total(written), 22);
});

test("the credential proxy's refusals are counted per reason and route, the paths tried listed", () => {
  const { c, written } = rig();
  const refusedRoute = (path, route = null, reason = 'unknown_route', status = 404) => ({ event_type: 'credential_proxy', decision: 'deny', subject: { principal: 'box' }, details: { route, method: 'GET', path, status, bytes_up: 0, bytes_down: 10, duration_ms: 0.1, reason } });
  for (let i = 0; i < 50; i++) c.record(refusedRoute(`/nope${i % 2}/x`), 'box');
  c.record(refusedRoute('/fake/../x', 'fake', 'bad_path', 400), 'box');
  c.record(refusedRoute('/fake/./y', 'fake', 'bad_path', 400), 'box');
  c.record(refusedRoute('/other/../x', 'other', 'bad_path', 400), 'box');
  assert.deepEqual(fulls(written).map((e) => `${e.details.reason} ${e.details.route}`), ['unknown_route null', 'bad_path fake', 'bad_path other'], 'another reason or route: in full');
  c.close();
  const s = summaries(written);
  assert.deepEqual(s.map((e) => [e.details.reason, e.details.route, e.details.coalesced.count, e.details.coalesced.samples]), [
    ['unknown_route', null, 49, ['GET /nope1/x', 'GET /nope0/x']],
    ['bad_path', 'fake', 1, ['GET /fake/./y']],
  ]);
  assert.deepEqual(Object.keys(s[0].details).sort(), ['coalesced', 'reason', 'route', 'status']);
  assert.equal(total(written), 53);
});

test('the kind cap: beyond maxKinds kinds at once, denials go to one over-cap summary that says so', () => {
  const { c, clock, written } = rig({ maxKinds: 3, maxSamples: 4 });
  for (let round = 0; round < 3; round++) {
    for (let h = 0; h < 10; h++) c.record(refused(`h${h}.test`), 'box');
    clock.t += 10;
  }
  assert.deepEqual(fulls(written).map((e) => e.details.host), ['h0.test', 'h1.test', 'h2.test'], 'only maxKinds kinds in full');
  clock.t += I;
  c.sweep();
  const s = summaries(written);
  const cap = s.find((e) => e.details.coalesced.over_cap);
  assert.ok(cap, 'an over-cap summary');
  assert.equal(cap.event_type, 'egress');
  assert.equal(cap.decision, 'deny');
  assert.deepEqual(cap.subject, { principal: 'box' });
  assert.equal(cap.details.coalesced.count, 21, '7 kinds over the cap, 3 times each');
  assert.equal(cap.details.coalesced.over_cap.max_kinds, 3);
  assert.deepEqual(cap.details.coalesced.samples, ['host_not_allowed h3.test:443 via fd 403', 'host_not_allowed h4.test:443 via fd 403', 'host_not_allowed h5.test:443 via fd 403', 'host_not_allowed h6.test:443 via fd 403']);
  assert.equal(cap.details.coalesced.samples_dropped, 9, 'the kinds not listed are counted: 3 kinds x 3');
  assert.equal(s.filter((e) => !e.details.coalesced.over_cap).length, 3, 'one summary per capped kind');
  assert.equal(total(written), 30);
  // A source's cap leaves other sources alone.
  const fresh = refused('h9.test');
  c.record(fresh, 'other');
  assert.equal(written.at(-1), fresh);
});

test('the sample cap: a summary lists at most maxSamples distinct samples, each cut to 256 characters, and counts the rest', () => {
  const { c, written } = rig({ maxSamples: 2 });
  c.record(refused('x.test', 'bad_target', { target: 'first' }), 'box');
  const long = 'L'.repeat(5000);
  for (const target of [long, 'b', long, 'c', 'b', 'd']) c.record(refused('x.test', 'bad_target', { target }), 'box');
  c.close();
  const k = summaries(written)[0].details.coalesced;
  assert.equal(k.count, 6);
  assert.deepEqual(k.samples, [`${'L'.repeat(256)}...`, 'b']);
  assert.equal(k.samples_dropped, 2, 'c and d were not listed (the listed values repeated are not dropped)');
  assert.ok(JSON.stringify(summaries(written)[0]).length < 1200, 'a summary stays small whatever the denials carried');
});

test('close() writes every counted interval at once and later events pass straight through', () => {
  const { c, written } = rig();
  c.record(refused('a.test'), 'box');
  c.record(refused('a.test'), 'box');
  c.record(refused('b.test'), 'box2');
  c.record(refused('b.test'), 'box2');
  c.record(refused('b.test'), 'box2');
  c.record(refused('c.test'), 'box'); // in full, nothing counted
  assert.equal(written.length, 3);
  c.close();
  assert.deepEqual(summaries(written).map((e) => [e.details.host, e.details.coalesced.count]), [['a.test', 1], ['b.test', 2]]);
  const after = refused('a.test');
  c.record(after, 'box');
  assert.equal(written.at(-1), after, 'after close nothing is held back');
  c.close();
  assert.equal(written.length, 6, 'a second close writes nothing more');
});

test('a failed full write reaches the caller and leaves the kind unseen; a failed summary write is said on stderr', (t) => {
  let fail = true;
  const written = [];
  const clock = { t: 0 };
  const c = new DenialCoalescer({ write: (e) => { if (fail) throw new Error('disk full'); written.push(e); }, classify: denialKind, timer: false, intervalMs: I, now: () => clock.t });
  assert.throws(() => c.record(refused('a.test'), 'box'), /disk full/);
  fail = false;
  const e = refused('a.test');
  c.record(e, 'box');
  assert.equal(written[0], e, 'the next denial is the first one recorded: in full');
  c.record(refused('a.test'), 'box');
  fail = true;
  const said = [];
  const orig = process.stderr.write;
  process.stderr.write = (s) => (said.push(String(s)), true);
  t.after(() => (process.stderr.write = orig));
  c.close();
  process.stderr.write = orig;
  assert.match(said.join(''), /cannot record a summary of 1 egress denial\(s\) in the ledger: disk full/);
});

test('bad options are refused by name', () => {
  for (const [k, v] of [['intervalMs', 0], ['maxKinds', -1], ['maxSamples', 1.5]]) {
    assert.throws(() => new DenialCoalescer({ write() {}, classify: denialKind, [k]: v }), new RegExp(`${k}: expected a positive integer`));
  }
});

test('the timer ends intervals without further denials', async () => {
  let resolve;
  const got = new Promise((r) => (resolve = r));
  const written = [];
  const c = new DenialCoalescer({ write: (e) => { written.push(e); if (e.details.coalesced) resolve(e); }, classify: denialKind, intervalMs: 20 });
  c.record(refused('a.test'), 'box');
  c.record(refused('a.test'), 'box');
  const alive = setInterval(() => {}, 1000); // the coalescer's timer does not hold the process open (unref)
  const s = await got.finally(() => clearInterval(alive));
  assert.equal(s.details.coalesced.count, 1);
  c.close();
  assert.equal(written.length, 2);
});

test('summaries in a real ledger keep the chain intact', (t) => {
  const dir = tempDir(t, 'latchgate-coalesce-');
  const ledger = Ledger.open(join(dir, 'ledger.sqlite3'));
  t.after(() => ledger.db.close());
  const clock = { t: Date.now() };
  const c = new DenialCoalescer({ write: (e) => ledger.append(e), classify: denialKind, intervalMs: I, timer: false, now: () => clock.t });
  for (let i = 0; i < 1000; i++) {
    clock.t += 3;
    c.record(refused(i % 250 === 0 ? `new${i}.test` : 'flood.test', 'host_not_allowed', { target: `denied:${i % 5}` }), 'box');
    if (i % 100 === 0) c.sweep();
  }
  c.close();
  const events = ledger.query({ event_type: 'egress', limit: 10_000 });
  assert.ok(events.length <= 12, `${events.length} events for 1000 denials`);
  assert.equal(total(events), 1000);
  const r = verifyLedger(ledger.db, new KeyStore(join(dir, 'keys')));
  assert.equal(r.first_bad, null, JSON.stringify(r.first_bad));
  assert.equal(r.total_events, events.length);
});

test('property: full events plus counts are exactly the denials, and the writes per source and interval are bounded', () => {
  const r = prng(SEED);
  for (let run = 0; run < 200; run++) {
    const maxKinds = 1 + r.below(5);
    const { c, clock, written } = rig({ maxKinds, maxSamples: 1 + r.below(3) });
    const t0 = clock.t;
    let denials = 0;
    let others = 0;
    const n = r.below(400);
    for (let i = 0; i < n; i++) {
      clock.t += r.pick([0, 1, 7, 50, 300, I - 1, I, 2 * I]);
      const source = r.pick(['a', 'b', 'c']);
      if (r.chance(0.1)) {
        c.record({ ...refused('allowed.test', 'client_closed', { status: 200 }), decision: 'allow' }, source);
        others++;
      }
      const e = r.chance(0.5) ? refused(`h${r.below(8)}.test`, r.pick(['host_not_allowed', 'literal_ip']), { target: `t${r.below(4)}` }) : { event_type: 'request_refused', decision: r.pick(['deny', 'error']), subject: { principal: source }, error: { code: r.pick(['invalid_dpop', 'route_not_found']), message: `m${r.below(3)}` }, details: { route: r.pick(['GET /a', 'POST /b']) } };
      if (r.chance(0.1)) e.decision = 'allow'; // never counted
      if (e.decision === 'allow') others++;
      else denials++;
      c.record(e, source);
      if (r.chance(0.05)) c.sweep();
    }
    const end = clock.t;
    c.close();
    const where = `seed ${SEED} run ${run}`;
    const counted = written.filter((e) => e.decision !== 'allow');
    assert.equal(total(counted), denials, `${where}: full events plus counts = denials`);
    assert.equal(written.length - counted.length, others, `${where}: every other event written once, in full`);
    for (const s of summaries(written)) assert.ok(s.details.coalesced.count >= 1, `${where}: no empty summary`);
    // A source holds at most maxKinds kinds, and a kind lives at least an interval: per source and
    // interval at most maxKinds full events, two summaries per kind and per over-cap bucket (three
    // event type and decision pairs here). Bounded by time, not by the number of denials.
    const intervals = Math.ceil((end - t0 + 1) / I) + 1;
    assert.ok(counted.length <= 3 * intervals * (3 * maxKinds + 6), `${where}: ${counted.length} writes for ${intervals} intervals`);
  }
});
