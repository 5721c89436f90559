// Rendering of audit events (table, json, jsonl, csv) and of a verify report.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatEvents, csvField, csvHeader, escapeControl, formatVerifyReport, CSV_COLUMNS, AUDIT_FORMATS } from '../../dist/ledger/format.js';
import { canonicalize } from '../../dist/crypto/jcs.js';

const events = [
  {
    event_type: 'action_call',
    trace_id: 't-1',
    timestamp: '2025-01-01T00:00:00.000Z',
    prev_hash: null,
    decision: 'allow',
    subject: { principal: 'agent', session_id: 's1' },
    action: { action_id: 'http_fetch', action_version: '1.0.0' },
    request: { request_hash: 'sha256:aa' },
  },
  {
    event_type: 'action_call',
    trace_id: 't-2',
    timestamp: '2025-01-01T00:00:01.000Z',
    prev_hash: 'sha256:bb',
    decision: 'deny',
    subject: { principal: 'evil, "quoted"\nname' },
    action: { action_id: '=HYPERLINK("http://x")' },
    policy: { deny_reason: 'no matching allow rule' },
  },
  { event_type: 'admin_drain', trace_id: 't-3', timestamp: '2025-01-01T00:00:02.000Z', prev_hash: 'sha256:cc', operator: { name: 'root', uid: 0 }, subject: { principal: '\u001b[31mred\u001b[0m' } },
];

test('table: a summary of counted denials shows how many it stands for', () => {
  const summary = { ...events[0], decision: 'deny', details: { coalesced: { count: 1499 } } };
  assert.match(formatEvents([summary], 'table').split('\n')[1], / deny x1499 /);
  assert.doesNotMatch(formatEvents([{ ...summary, details: {} }], 'table'), /x1499/);
});

test('table: header and aligned columns; missing values as "-"; control characters escaped', () => {
  const out = formatEvents(events, 'table');
  const lines = out.trimEnd().split('\n');
  assert.equal(lines.length, 4);
  assert.match(lines[0], /^TIMESTAMP\s+EVENT_TYPE\s+DECISION\s+PRINCIPAL\s+ACTION_ID\s+HOST\s+REASON\s+ERROR\s+TRACE_ID$/);
  const col = (name) => lines[0].indexOf(name);
  for (const name of ['EVENT_TYPE', 'DECISION', 'PRINCIPAL', 'ACTION_ID', 'HOST', 'REASON', 'ERROR', 'TRACE_ID']) {
    for (const l of lines.slice(1)) assert.equal(l[col(name) - 1], ' ', `column ${name} aligned in ${JSON.stringify(l)}`);
  }
  assert.ok(lines[1].startsWith('2025-01-01T00:00:00.000Z  action_call  allow'));
  assert.ok(lines[3].includes(' - '), 'missing decision shown as -');
  assert.ok(!out.includes('\u001b'), 'no escape sequence reaches the terminal');
  assert.ok(out.includes('\\u001b[31mred'));
  assert.ok(lines[2].includes('evil, "quoted"\\u000aname'));
  assert.equal(formatEvents([], 'table'), 'TIMESTAMP  EVENT_TYPE  DECISION  PRINCIPAL  ACTION_ID  HOST  REASON  ERROR  TRACE_ID\n');
});

test('json and jsonl round-trip; jsonl lines are the canonical bytes', () => {
  assert.deepEqual(JSON.parse(formatEvents(events, 'json')), events);
  const lines = formatEvents(events, 'jsonl').split('\n');
  assert.equal(lines.pop(), '');
  assert.deepEqual(lines.map((l) => JSON.parse(l)), events);
  assert.deepEqual(lines, events.map((e) => canonicalize(e)));
  assert.equal(formatEvents([], 'jsonl'), '');
  assert.equal(formatEvents([], 'json'), '[]\n');
});

test('csv: header, RFC 4180 quoting, formula neutralising, parseable back', () => {
  const out = formatEvents(events, 'csv');
  assert.ok(out.startsWith(csvHeader()));
  assert.equal(csvHeader(), `${CSV_COLUMNS.join(',')}\r\n`);
  assert.equal(csvField('plain'), 'plain');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('two\nlines'), '"two\nlines"');
  assert.equal(csvField(' pad'), '" pad"');
  assert.equal(csvField('=1+2'), "'=1+2");
  assert.equal(csvField('@SUM(A1)'), "'@SUM(A1)");
  assert.equal(csvField('-2'), "'-2");
  assert.equal(csvField(''), '');
  // a minimal RFC 4180 parser reads back exactly what was written
  const parse = (text) => {
    const rows = [];
    let row = [];
    let f = '';
    let q = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (q) {
        if (c === '"' && text[i + 1] === '"') (f += '"'), i++;
        else if (c === '"') q = false;
        else f += c;
      } else if (c === '"') q = true;
      else if (c === ',') row.push(f), (f = '');
      else if (c === '\r' && text[i + 1] === '\n') row.push(f), rows.push(row), (row = []), (f = ''), i++;
      else f += c;
    }
    return rows;
  };
  const rows = parse(out);
  assert.equal(rows.length, 4);
  assert.ok(rows.every((r) => r.length === CSV_COLUMNS.length));
  const at = (r, c) => rows[r][CSV_COLUMNS.indexOf(c)];
  assert.equal(at(1, 'principal'), 'agent');
  assert.equal(at(1, 'action_version'), '1.0.0');
  assert.equal(at(2, 'principal'), 'evil, "quoted"\nname');
  assert.equal(at(2, 'action_id'), `'=HYPERLINK("http://x")`);
  assert.equal(at(2, 'deny_reason'), 'no matching allow rule');
  assert.equal(at(3, 'operator'), 'root');
  assert.equal(at(3, 'prev_hash'), 'sha256:cc');
});

test('unknown format is an error naming the valid ones', () => {
  assert.deepEqual(AUDIT_FORMATS, ['table', 'json', 'jsonl', 'csv']);
  assert.throws(() => formatEvents(events, 'xml'), /table, json, jsonl, csv/);
  assert.equal(escapeControl('a\u2028b\u007f'), 'a\\u2028b\\u007f');
});

test('verify report: intact and broken wording', () => {
  const checkpoints = { ok: true, origin: 'latchgate.local/ledger/x', tree_size: 3, stored: 0, latest: null, log: null, external: null, problems: [] };
  const base = { intact: true, total_events: 3, verified_links: 2, chain_head: 'sha256:x', first_bad: null, receipts: { total: 1, bad: [] }, intents_without_receipts: [], database: { ok: true, problems: [] }, checkpoints };
  assert.equal(formatVerifyReport(base), 'Ledger integrity verified: 3 events, 2 links intact.\nReceipts: 1 verified.\nCheckpoints: none stored yet (a gate signs them as it runs; `latchgate checkpoint` signs one now).\n');
  const signed = formatVerifyReport({ ...base, checkpoints: { ...checkpoints, stored: 2, latest: { size: 3, root: 'ab', created_at: '2030-01-01T00:00:00.000Z' }, log: { path: '/s/checkpoints.log', entries: 2 } } });
  assert.match(signed, /\nCheckpoints: 2 signed, the latest of size 3 \(2030-01-01T00:00:00\.000Z\); each matches the tree recomputed from the 3 events; \/s\/checkpoints\.log agrees \(2 entries\)\.\n$/);
  const problems = [
    { kind: 'truncated', where: 'checkpoints table', size: 9, message: 'the ledger was truncated below the checkpoint: ...' },
    { kind: 'tree_mismatch', where: 'merkle_nodes', message: 'the stored Merkle tree \u001b[31m...' },
  ];
  const failed = formatVerifyReport({ ...base, intact: false, checkpoints: { ...checkpoints, ok: false, problems } });
  assert.match(failed, /\nCheckpoints FAIL: the ledger was truncated below the checkpoint: \.\.\.\n1 more checkpoint problem\(s\):\n  the stored Merkle tree \\u001b\[31m\.\.\.\n$/);
  const broken = formatVerifyReport({ ...base, intact: false, first_bad: { id: 2, trace_id: null, reason: 'missing: event id=2 was deleted' }, receipts: { total: 1, bad: [{ receipt_id: 'r1', reason: 'the receipt is not signed' }] } });
  assert.match(broken, /^BROKEN at id=2 trace_id=\(missing\): missing: event id=2 was deleted\n/);
  assert.match(broken, /1 of 1 receipts FAIL verification:\n  receipt r1: the receipt is not signed/);
  // The bad row's trace_id is its (edited) column: a newline in it cannot start a line that reads as the verdict.
  const forged = formatVerifyReport({ ...base, intact: false, first_bad: { id: 2, trace_id: 't\nLedger integrity verified: 3 events, 2 links intact.', reason: 'column trace_id disagrees with event_json' } });
  assert.match(forged, /^BROKEN at id=2 trace_id=t\\u000aLedger integrity verified/);
  assert.ok(!forged.split('\n').some((l) => l.startsWith('Ledger integrity verified')), forged);
  const index = formatVerifyReport({ ...base, intact: false, database: { ok: false, problems: ['row 5 missing from index audit_events_event_type'] } });
  assert.match(index, /The SQLite file itself is inconsistent \(PRAGMA integrity_check\).*Fix: restore the state directory from a backup\.\n  row 5 missing from index audit_events_event_type\n$/);
});
