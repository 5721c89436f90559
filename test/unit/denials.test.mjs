// The run's refusals as the user who started the box is told them
// (src/sandbox/denials.ts, src/egress/denial-advice.ts): one entry per host
// with what was refused, how often and what would allow it; the first of each
// kind as a notice; nothing the box made up reaches the terminal; the ledger's
// `--event-type egress` is every exit's events, and the audit table shows
// host, reason and error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DenialSummary, describeNotice } from '../../dist/sandbox/denials.js';
import { denialFix, boxAdvice } from '../../dist/egress/denial-advice.js';
import { Ledger } from '../../dist/ledger/ledger.js';
import { openDb } from '../../dist/ledger/db.js';
import { formatEvents } from '../../dist/ledger/format.js';
import { tempDir } from '../fixtures/unit/helpers.mjs';

const connect = (host, reason, more = {}) => ({ event_type: 'egress', decision: 'deny', subject: { principal: 'box' }, details: { host, port: 443, resolved_address: null, bytes_up: 0, bytes_down: 0, duration_ms: 1, reason, transport: 'fd', status: 403, ...more } });
const dns = (name, more = {}) => ({ event_type: 'egress_dns', decision: 'deny', subject: { principal: 'box' }, details: { name, qtype: 'A', reason: 'dns_refused', rcode: 'REFUSED', transport: 'udp', allowlisted: false, ...more } });
const cred = (route, reason, path = '/x') => ({ event_type: 'credential_proxy', decision: 'deny', subject: { principal: 'box' }, details: { route, method: 'GET', path, status: 404, bytes_up: 0, bytes_down: 0, duration_ms: 1, redactions: 0, reason } });

test('the fix for each refusal: a flag or a configuration line for the user; the box never gets the host-side addresses', () => {
  assert.equal(denialFix({ reason: 'host_not_allowed', host: 'a.example' }, 'box'), '--allow-host a.example');
  assert.equal(denialFix({ reason: 'host_not_allowed', host: 'a.example' }, 'operator'), '--allow-host a.example (or "a.example" in allow_hosts of [sandbox.agent])');
  assert.equal(denialFix({ reason: 'egress_disabled', host: 'a.example' }, 'box'), '--allow-host a.example');
  assert.equal(denialFix({ reason: 'port_not_allowed', host: 'a.example', port: 8443, allowPorts: [443] }, 'box'), 'allow_ports = [443, 8443] in [sandbox.network]');
  const priv = { reason: 'address_not_allowed', host: 'mirror.corp', port: 443, addresses: ['10.0.0.5', '10.0.0.6'] };
  assert.equal(denialFix(priv, 'operator'), '[sandbox.network.resolve] "mirror.corp" = "10.0.0.5:443"');
  assert.equal(denialFix({ ...priv, addresses: ['fd00::5'] }, 'operator'), '[sandbox.network.resolve] "mirror.corp" = "[fd00::5]:443"');
  assert.doesNotMatch(denialFix(priv, 'box'), /10\.0\.0/);
  assert.doesNotMatch(boxAdvice(priv).join(' '), /10\.0\.0/);
  assert.match(denialFix({ reason: 'dns_refused', host: 'x.example', allowlisted: true }, 'box'), /^it is allowed: connect through HTTPS_PROXY by name$/);
  assert.equal(denialFix({ reason: 'dns_refused', host: 'x.example', proxied: true }, 'box'), '--allow-host x.example, then connect through HTTPS_PROXY by name');
  assert.equal(denialFix({ reason: 'unknown_route', host: 'openai' }, 'operator'), 'a [sandbox.agent.credentials.openai] section in latchgate.toml');
  // What nothing the user sets would allow has no fix; a host that is not a validated name is never repeated.
  for (const reason of ['bad_target', 'malformed_request', 'too_many_tunnels', 'upstream_connect_failed', 'ledger_unavailable']) assert.equal(denialFix({ reason, host: 'a.example' }, 'operator'), null, reason);
  assert.equal(denialFix({ reason: 'host_not_allowed', host: 'a.example\u001b[31m' }, 'operator'), null);
  assert.deepEqual(boxAdvice({ reason: 'bad_target', host: null }), []);
});

test('one entry per host: what was refused, how often, the fix; a notice only for the first of each kind', () => {
  const s = new DenialSummary({ allowPorts: [443], proxied: true });
  const notices = [];
  const add = (e) => {
    const n = s.add(e);
    if (n) notices.push(describeNotice(n));
  };
  add(connect('denied.example', 'host_not_allowed'));
  add(connect('denied.example', 'host_not_allowed'));
  add(dns('denied.example'));
  add(dns('denied.example', { transport: 'tcp' }));
  add(connect('mirror.corp', 'address_not_allowed', { addresses: ['10.0.0.5'] }));
  add(dns('api.example.test', { allowlisted: true }));
  add(cred(null, 'unknown_route', '/openai/v1/chat'));
  add({ ...connect('ok.example', 'client_closed'), decision: 'allow' }); // a tunnel: no refusal
  add({ event_type: 'sandbox_host_exec', decision: 'deny', details: { reason: 'x' } }); // not an exit
  assert.deepEqual(notices, [
    'refused: denied.example: CONNECT :443 host_not_allowed; fix: --allow-host denied.example (or "denied.example" in allow_hosts of [sandbox.agent])',
    'refused: denied.example: DNS lookup dns_refused; fix: --allow-host denied.example, then connect through HTTPS_PROXY by name',
    'refused: mirror.corp: CONNECT :443 address_not_allowed (resolves to 10.0.0.5); fix: [sandbox.network.resolve] "mirror.corp" = "10.0.0.5:443"',
    'refused: api.example.test: DNS lookup dns_refused; fix: it is allowed: connect through HTTPS_PROXY by name',
    'refused: credential route openai: credential proxy unknown_route; fix: a [sandbox.agent.credentials.openai] section in latchgate.toml',
  ]);
  const r = s.report();
  assert.deepEqual([r.total, r.connect, r.dns, r.credential, r.otherHosts], [7, 3, 3, 1, 0]);
  assert.deepEqual(r.hosts[0], {
    host: 'denied.example',
    count: 4,
    reasons: { host_not_allowed: 2, dns_refused: 2 },
    fix: ['--allow-host denied.example (or "denied.example" in allow_hosts of [sandbox.agent])', '--allow-host denied.example, then connect through HTTPS_PROXY by name'],
  });
  const lines = s.lines('sandbox-agent');
  assert.equal(lines[0], "the box's network requests were refused 7 times (4 hosts); each in the ledger: latchgate audit --event-type egress --principal sandbox-agent");
  assert.equal(lines[1], '  denied.example: CONNECT :443 host_not_allowed x2, DNS lookup dns_refused x2; fix: --allow-host denied.example (or "denied.example" in allow_hosts of [sandbox.agent]); --allow-host denied.example, then connect through HTTPS_PROXY by name');
  assert.equal(lines.length, 5);
  assert.deepEqual(new DenialSummary({ allowPorts: [443], proxied: false }).lines('p'), [], 'nothing refused, nothing said');
});

test('what the box makes up never reaches the terminal, and a flood of hosts stays bounded', () => {
  const s = new DenialSummary({ allowPorts: [443], proxied: true });
  const hostile = ['\u001b]0;pwned\u0007', 'a\u202eb.example', 'x'.repeat(2000)];
  for (const h of hostile) {
    s.add(connect(h, 'host_not_allowed'));
    s.add(dns(h));
    s.add(cred(h, 'unknown_route', `/${h}/x`));
  }
  s.add(connect('ok.example', 'reason with spaces\u001b'));
  const text = JSON.stringify([s.lines('p'), s.report()]);
  for (const h of hostile) assert.ok(!text.includes(h), `not shown: ${JSON.stringify(h.slice(0, 20))}`);
  for (const line of s.lines('p')) assert.ok(!/[\u0000-\u001f\u007f-\u009f\u202e]/.test(line), JSON.stringify(line));
  assert.match(text, /\(no host named\)/);
  assert.match(text, /\(unreadable DNS query\)/);

  const many = new DenialSummary({ allowPorts: [443], proxied: true });
  for (let i = 0; i < 1000; i++) many.add(dns(`n${i}.example`));
  const r = many.report();
  assert.equal(r.total, 1000);
  assert.equal(r.hosts.length, 64);
  assert.equal(r.otherHosts, 1000 - 64);
  assert.match(many.lines('p').at(-1), /936 more refusal\(s\) of other hosts/);
});

test('--event-type egress selects every exit: CONNECT, credential proxy and resolver events', (t) => {
  const dir = tempDir(t, 'latchgate-denials-');
  const ledger = new Ledger(openDb(join(dir, 'ledger.db'))).migrate();
  t.after(() => ledger.db.close());
  ledger.append(connect('denied.example', 'host_not_allowed', { detail: 'x'.repeat(200) }));
  ledger.append(cred('fake', 'upstream_timeout'));
  ledger.append(dns('registry.npmjs.org'));
  ledger.append({ event_type: 'sandbox_degraded', decision: 'allow', subject: { principal: 'box' }, details: { degraded: ['x'], workspace: '/w' } });
  assert.deepEqual(ledger.query({ event_type: 'egress' }).map((e) => e.event_type), ['egress', 'credential_proxy', 'egress_dns']);
  assert.deepEqual(ledger.query({ event_type: 'egress_dns' }).map((e) => e.event_type), ['egress_dns'], 'a type of the group alone');
  const lines = [];
  ledger.exportJsonl((l) => lines.push(l), { event_type: 'egress' });
  assert.equal(lines.length, 3);

  const table = formatEvents(ledger.query({ event_type: 'egress' }), 'table').trimEnd().split('\n');
  assert.match(table[0], /\bHOST\s+REASON\s+ERROR\b/);
  const col = (name) => table[0].indexOf(name);
  const cell = (line, name, next) => line.slice(col(name), col(next)).trim();
  assert.deepEqual([cell(table[1], 'HOST', 'REASON'), cell(table[1], 'REASON', 'ERROR')], ['denied.example:443', 'host_not_allowed']);
  assert.match(cell(table[1], 'ERROR', 'TRACE_ID'), /^x{59}…$/, 'a long detail is cut in the table');
  assert.deepEqual([cell(table[2], 'HOST', 'REASON'), cell(table[2], 'REASON', 'ERROR')], ['route fake', 'upstream_timeout']);
  assert.deepEqual([cell(table[3], 'HOST', 'REASON'), cell(table[3], 'REASON', 'ERROR')], ['registry.npmjs.org', 'dns_refused']);
});
