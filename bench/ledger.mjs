#!/usr/bin/env node
// make bench-ledger: what the Merkle tree (src/ledger/merkle-store.ts) costs.
// 1. Append throughput, one event per transaction as Ledger.append does it,
//    with the tree and without it (the same Ledger with its tree step made a
//    no-op, on a file of its own), in alternating rounds of one run; and the
//    pages each commit adds to the WAL (what a commit writes, free of the
//    machine's noise).
// 2. A ledger of BENCH_EVENTS (default 10^6) events, written in one bulk SQL
//    insert, its tree built at open (the migration of a ledger from before
//    the tree), then proof generation times at that size.
// 3. `latchgate verify` as a user runs it (the CLI, a process of its own) on
//    a ledger of BENCH_VERIFY_EVENTS (default 10^6) events appended through
//    the Ledger, with a signed checkpoint every 1000 in the table and in
//    checkpoints.log: the whole verification (chain, receipts, state, SQLite's
//    integrity check, every checkpoint against the tree recomputed from the
//    events) in events per second; then the checkpoint part alone, in process.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import path from 'node:path';
import { Ledger } from '../dist/ledger/ledger.js';
import { immediate, openDb, openDbReadOnly } from '../dist/ledger/db.js';
import { nodeMerkle } from '../dist/crypto/merkle.js';
import { KeyStore } from '../dist/keys/store.js';
import { TreeCheckpoints } from '../dist/ledger/tree-checkpoints.js';
import { CheckpointPublisher, LogSink } from '../dist/ledger/checkpoint-sinks.js';
import { checkCheckpoints, readCheckpointLog } from '../dist/ledger/tree-verify.js';
import { verifyLedgerFile } from '../dist/ledger/verify.js';

const ROUNDS = 5;
const PER_ROUND = 2000;
const EVENTS = Number(process.env.BENCH_EVENTS ?? 1_000_000);
const PROOFS = 2000;
const VERIFY_EVENTS = Number(process.env.BENCH_VERIFY_EVENTS ?? 1_000_000);
const CHECKPOINT_EVERY = 1000;
const CLI = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));

const dir = mkdtempSync(path.join(os.tmpdir(), 'latchgate-bench-ledger-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

/** CPU seconds of the children waited for so far: /proc/self/stat cutime + cstime (fields 16 and 17 of proc(5), in USER_HZ = 100 ticks). */
function childrenCpu() {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  return (Number(fields[13]) + Number(fields[14])) / 100;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
const us = (ns) => (Number(ns) / 1000).toFixed(1);
// A small seeded PRNG: the same indices every run.
let seed = 0x1ed9e5;
const below = (n) => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return Math.floor((seed / 2 ** 32) * n);
};

// A gate-like event: an allowed action call with its subject, action and details.
const event = (i) => ({
  event_type: 'action_call',
  decision: 'allow',
  subject: { principal: `agent-${i % 7}`, session_id: `s-${i % 31}` },
  action: { action_id: 'http_fetch', action_version: '1.0.0' },
  request: { request_hash: `sha256:${i.toString(16).padStart(64, '0')}` },
  details: { n: i, note: 'x'.repeat(200) },
});

function appendThroughput() {
  const withTree = Ledger.open(path.join(dir, 'with-tree.sqlite3'));
  const without = Ledger.open(path.join(dir, 'without-tree.sqlite3'));
  without.merkle.append = () => {}; // this file's tree is not kept: only this bench does that
  const rounds = { with: [], without: [] };
  let n = 0;
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, ledger] of r % 2 ? [['without', without], ['with', withTree]] : [['with', withTree], ['without', without]]) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < PER_ROUND; i++) ledger.append(event(n++));
      rounds[name].push(Number(process.hrtime.bigint() - t0) / PER_ROUND);
    }
  }
  const a = median(rounds.with);
  const b = median(rounds.without);
  console.log(`append, one event per transaction (${ROUNDS} rounds x ${PER_ROUND}, median round):`);
  console.log(`  with the tree     ${us(a)} us/event  ${Math.round(1e9 / a)} events/s`);
  console.log(`  without the tree  ${us(b)} us/event  ${Math.round(1e9 / b)} events/s`);
  console.log(`  the tree adds     ${us(a - b)} us/event (${(((a - b) / b) * 100).toFixed(1)}%)`);
  console.log(`  tree size ${withTree.merkle.treeSize()}, root ${Buffer.from(withTree.merkle.merkleRoot()).toString('hex').slice(0, 16)}...`);
  const pages = (ledger) => {
    ledger.db.pragma('wal_checkpoint(TRUNCATE)');
    ledger.db.pragma('wal_autocheckpoint = 0');
    const wal = `${ledger.db.name}-wal`;
    const before = statSync(wal).size;
    for (let i = 0; i < 200; i++) ledger.append(event(n++));
    const pageSize = ledger.db.pragma('page_size', { simple: true });
    return (statSync(wal).size - before) / (pageSize + 24) / 200; // a WAL frame: 24-byte header + one page
  };
  console.log(`  WAL pages per commit: ${pages(withTree).toFixed(2)} with the tree, ${pages(without).toFixed(2)} without`);
  withTree.db.close();
  without.db.close();
}

function bigLedger() {
  const file = path.join(dir, 'big.sqlite3');
  Ledger.open(file).db.close();
  // The tree's own state removed: the next open builds it from the events, as for a ledger from before it.
  const db = openDb(file);
  let t0 = process.hrtime.bigint();
  db.exec(`WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i + 1 < ${EVENTS})
    INSERT INTO audit_events(trace_id, timestamp, event_type, principal, session_id, action_id, decision, event_json, hash)
    SELECT 'bench-' || i, '2030-01-01T00:00:00.000Z', 'action_call', 'agent-' || (i % 7), 's-' || (i % 31), 'http_fetch', 'allow',
           '{"action":{"action_id":"http_fetch"},"details":{"n":' || i || '},"event_type":"action_call","trace_id":"bench-' || i || '"}', 'sha256:-'
      FROM c`);
  db.exec(`DROP TABLE merkle_nodes; DELETE FROM ledger_metadata WHERE key = 'merkle_tree'`);
  db.close();
  const insertS = Number(process.hrtime.bigint() - t0) / 1e9;
  t0 = process.hrtime.bigint();
  const ledger = Ledger.open(file);
  const buildS = Number(process.hrtime.bigint() - t0) / 1e9;
  const size = ledger.merkle.treeSize();
  console.log(`\na ledger of ${size} events: bulk insert ${insertS.toFixed(1)} s; tree built at open in ${buildS.toFixed(1)} s (${Math.round(size / buildS)} events/s)`);

  const time = (fn) => {
    const t = process.hrtime.bigint();
    fn();
    return Number(process.hrtime.bigint() - t);
  };
  const root = ledger.merkle.merkleRoot();
  const incl = [];
  const inclHistoric = [];
  const cons = [];
  const roots = [];
  for (let k = 0; k < PROOFS; k++) {
    const i = below(size);
    let proof;
    incl.push(time(() => (proof = ledger.merkle.inclusionProof(i, size))));
    if (k < 20) nodeMerkle.verifyInclusion(i, size, ledger.merkle.leaf(i).hash, proof, root);
    const s = 1 + below(size);
    inclHistoric.push(time(() => ledger.merkle.inclusionProof(below(s), s)));
    const m = 1 + below(s);
    cons.push(time(() => ledger.merkle.consistencyProof(m, s)));
    roots.push(time(() => ledger.merkle.merkleRoot(s)));
  }
  const line = (name, xs) => console.log(`  ${name.padEnd(38)} p50 ${us(median(xs)).padStart(6)} us   p99 ${us(pct(xs, 0.99)).padStart(6)} us`);
  console.log(`proofs from the stored nodes (${PROOFS} each, random indices and sizes):`);
  line(`inclusion proof at size ${size}`, incl);
  line('inclusion proof at a random size', inclHistoric);
  line('consistency proof between random sizes', cons);
  line('root of a random size', roots);
  ledger.db.close();
}

async function verifyThroughput() {
  const home = path.join(dir, 'verify-home');
  const state = path.join(home, 'state', 'latchgate');
  mkdirSync(state, { recursive: true });
  const ledger = Ledger.open(path.join(state, 'ledger.sqlite3'));
  const keys = new KeyStore(path.join(state, 'keys'));
  const store = new TreeCheckpoints(ledger, keys);
  const log = new CheckpointPublisher(store, [new LogSink(path.join(state, 'checkpoints.log'))]);
  let t0 = process.hrtime.bigint();
  for (let n = 0; n < VERIFY_EVENTS; ) {
    const upTo = Math.min(VERIFY_EVENTS, n + CHECKPOINT_EVERY);
    immediate(ledger.db, () => {
      for (; n < upTo; n++) ledger.appendInTransaction(event(n));
    });
    store.signCheckpoint();
    await log.publish();
  }
  const writeS = Number(process.hrtime.bigint() - t0) / 1e9;
  const checkpoints = store.listCheckpoints().length;
  ledger.db.close();
  console.log(`\nlatchgate verify on ${VERIFY_EVENTS} events with ${checkpoints} checkpoints (written through the Ledger in ${writeS.toFixed(1)} s):`);
  const env = { PATH: process.env.PATH, HOME: home, XDG_STATE_HOME: path.join(home, 'state'), XDG_CONFIG_HOME: path.join(home, 'config'), XDG_RUNTIME_DIR: path.join(home, 'run') };
  const runs = [];
  const cpus = [];
  for (let i = 0; i < 2; i++) {
    t0 = process.hrtime.bigint();
    const cpu0 = childrenCpu();
    const r = spawnSync(process.execPath, [CLI, 'verify', '--json'], { env, encoding: 'utf8', maxBuffer: 1 << 26 });
    runs.push(Number(process.hrtime.bigint() - t0) / 1e9);
    cpus.push(childrenCpu() - cpu0);
    const report = JSON.parse(r.stdout);
    if (r.status !== 0 || report.checkpoints.stored !== checkpoints) throw new Error(`verify failed: exit ${r.status} ${r.stderr} ${JSON.stringify(report.checkpoints.problems)}`);
  }
  const best = Math.min(...runs);
  console.log(`  the whole \`latchgate verify\` (best of ${runs.length})  ${best.toFixed(1)} s  ${Math.round(VERIFY_EVENTS / best)} events/s (goal: 50000)`);
  // The CPU time of the process: what a machine with a core to spare gives, whatever else ran meanwhile.
  const cpu = Math.min(...cpus);
  console.log(`  its CPU time (user + system, best of ${cpus.length})  ${cpu.toFixed(1)} s  ${Math.round(VERIFY_EVENTS / cpu)} events per CPU second`);
  // In this process, the CPU time of the walk's own thread apart from the worker threads': on a machine with the
  // cores free, the wall time is about the larger of the walk thread's time and all threads' time over the cores.
  const threadCpu = () => {
    const f = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  };
  const keysDir = path.join(state, 'keys');
  const c0 = threadCpu();
  const p0 = process.cpuUsage();
  const inProcess = verifyLedgerFile(path.join(state, 'ledger.sqlite3'), new KeyStore(keysDir), undefined, { checkpoints: { log: readCheckpointLog(path.join(state, 'checkpoints.log')) } });
  const all = process.cpuUsage(p0);
  if (!inProcess.intact) throw new Error('verify in process: not intact');
  const walkCpu = threadCpu() - c0;
  const allCpu = (all.user + all.system) / 1e6;
  const cores = os.availableParallelism();
  const free = Math.max(walkCpu, allCpu / cores);
  console.log(`  in process: the walk's thread ${walkCpu.toFixed(1)} s CPU, all threads ${allCpu.toFixed(1)} s; with ${cores} free cores about ${free.toFixed(1)} s  ${Math.round(VERIFY_EVENTS / free)} events/s`);
  const db = openDbReadOnly(path.join(state, 'ledger.sqlite3'));
  const logText = readCheckpointLog(path.join(state, 'checkpoints.log'));
  t0 = process.hrtime.bigint();
  const report = db.transaction(() => checkCheckpoints(db, new KeyStore(path.join(state, 'keys')), { log: logText }))();
  const cpS = Number(process.hrtime.bigint() - t0) / 1e9;
  db.close();
  if (!report.ok) throw new Error(JSON.stringify(report.problems));
  console.log(`  of which the checkpoints (${checkpoints} signatures, the tree recomputed, ${checkpoints - 1} consistency proofs)  ${cpS.toFixed(1)} s  ${Math.round(VERIFY_EVENTS / cpS)} events/s`);
}

appendThroughput();
bigLedger();
await verifyThroughput();
