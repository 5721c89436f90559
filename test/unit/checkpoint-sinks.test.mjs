// Where checkpoints go (src/ledger/checkpoint-sinks.ts): checkpoints.log, a
// directory, a command, an HTTPS endpoint (a loopback server with a test CA).
// Each delivers the signed note as stored; a failing sink is loud (stderr,
// and one checkpoint_sink_failed event when it starts failing), keeps what
// waits for it across rounds and restarts, and takes all of it, in order,
// once it works again (checkpoint_sink_recovered). Bad sink sections are
// refused, naming the section.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ledger } from '../../dist/ledger/ledger.js';
import { KeyStore } from '../../dist/keys/store.js';
import { TreeCheckpoints } from '../../dist/ledger/tree-checkpoints.js';
import { CheckpointPublisher, CommandSink, DirectorySink, HttpsSink, LogSink, checkpointFileName, sinksFromConfig } from '../../dist/ledger/checkpoint-sinks.js';
import { splitNotes } from '../../dist/ledger/tree-verify.js';
import { parseConfig } from '../../dist/config/latchgate-toml.js';
import { LaunchError } from '../../dist/core/errors.js';
import { NO_OPENSSL, tlsUpstream } from '../helpers/tls-upstream.mjs';
import { assertLaunchError, tempDir } from '../fixtures/unit/helpers.mjs';

function setup(t) {
  const dir = tempDir(t, 'latchgate-sinks-');
  const ledger = Ledger.open(join(dir, 'ledger.sqlite3'));
  t.after(() => ledger.db.close());
  const store = new TreeCheckpoints(ledger, new KeyStore(join(dir, 'keys')));
  const grow = (n = 3) => {
    for (let i = 0; i < n; i++) ledger.append({ event_type: 'admin_drain', decision: 'allow', operator: { name: 'op' }, subject: { principal: 'op' }, details: {} });
    return store.signCheckpoint();
  };
  const warnings = [];
  const publisher = (sinks) => new CheckpointPublisher(store, sinks, undefined, (m) => warnings.push(m));
  const events = (type) => ledger.query({ event_type: type }).map((e) => e.details);
  return { dir, ledger, store, grow, publisher, warnings, events };
}

test('checkpoints.log: each note appended whole, in order; the log reads back as the stored notes', async (t) => {
  const s = setup(t);
  const log = join(s.dir, 'checkpoints.log');
  const p = s.publisher([new LogSink(log)]);
  const notes = [];
  for (let i = 0; i < 3; i++) {
    notes.push(s.grow().note);
    const [o] = await p.publish();
    assert.equal(o.error, undefined);
    assert.equal(o.pending, 0);
  }
  assert.deepEqual(splitNotes(readFileSync(log, 'utf8')), notes.map((note) => ({ note })));
  // Nothing new: nothing appended again.
  await p.publish();
  assert.equal(splitNotes(readFileSync(log, 'utf8')).length, 3);
});

test('a directory: one file per checkpoint named by size, the note exactly; another checkpoint of a size already there is refused as a fork, and retried', async (t) => {
  const s = setup(t);
  const out = join(s.dir, 'elsewhere');
  mkdirSync(out);
  const p = s.publisher([new DirectorySink('outside', out)]);
  const a = s.grow();
  await p.publish();
  assert.deepEqual(readdirSync(out), [checkpointFileName(a.size)]);
  assert.equal(readFileSync(join(out, checkpointFileName(a.size)), 'utf8'), a.note);
  assert.match(checkpointFileName(a.size), /^0{15}3\.checkpoint$/);
  // A file of the next size is already there, with another note in it.
  writeFileSync(join(out, checkpointFileName(6)), 'someone else\'s checkpoint\n');
  const b = s.grow();
  assert.equal(b.size, 6);
  const [o] = await p.publish();
  assert.match(o.error, /holds another checkpoint of size 6: a fork of this ledger, or another ledger writing to the same directory/);
  assert.equal(readFileSync(join(out, checkpointFileName(6)), 'utf8'), 'someone else\'s checkpoint\n', 'never overwritten');
  assert.deepEqual(s.events('checkpoint_sink_failed').map((d) => [d.sink, d.size, d.pending]), [['outside', 6, 1]]);
  assert.match(s.warnings.join('\n'), /checkpoint sink outside \(directory .*\) failed to take the checkpoint of size 6: .*1 checkpoint\(s\) wait for it/);
  // Still failing a round later, with a new checkpoint waiting too: loud on stderr, one event for the streak.
  s.grow();
  assert.equal((await p.publish())[0].pending, 2);
  assert.equal(s.events('checkpoint_sink_failed').length, 1);
  assert.equal(s.warnings.length, 2);
  // The stray file removed: both waiting checkpoints delivered, in order, and the recovery recorded.
  rmSync(join(out, checkpointFileName(6)));
  const [ok] = await p.publish();
  assert.deepEqual(ok.delivered, [6, 10]);
  assert.equal(ok.pending, 0);
  assert.deepEqual(readdirSync(out).sort(), [3, 6, 10].map(checkpointFileName));
  assert.deepEqual(s.events('checkpoint_sink_recovered').map((d) => [d.sink, d.failures, d.delivered_size]), [['outside', 2, 10]]);
  assert.ok(!readdirSync(out).some((n) => n.startsWith('.')), 'no temporary file left');
});

test('a command: argv without a shell, the note on stdin, a clean environment; a failing, hanging or missing program fails the round, and what waits is kept for a later publisher', async (t) => {
  const s = setup(t);
  const out = join(s.dir, 'cmd-out');
  mkdirSync(out);
  process.env.LATCHGATE_SECRET_TEST_CP = 'do-not-leak';
  t.after(() => delete process.env.LATCHGATE_SECRET_TEST_CP);
  // Writes stdin, its argv and environment to <out>/<size>.
  const script = `const fs = require('fs'); const d = fs.readFileSync(0, 'utf8'); fs.writeFileSync(process.argv[1] + '/' + process.env.LATCHGATE_CHECKPOINT_SIZE, JSON.stringify({ note: d, argv: process.argv.slice(2), env: process.env }));`;
  const sink = new CommandSink('script', [process.execPath, '-e', script, out, '; touch $HOME/pwned $(id)'], 10_000);
  const a = s.grow();
  const [o] = await s.publisher([sink]).publish();
  assert.equal(o.error, undefined, o.error);
  const seen = JSON.parse(readFileSync(join(out, String(a.size)), 'utf8'));
  assert.equal(seen.note, a.note);
  assert.deepEqual(seen.argv, ['; touch $HOME/pwned $(id)'], 'arguments reach the program as they are: no shell');
  assert.equal(seen.env.LATCHGATE_CHECKPOINT_ORIGIN, a.origin);
  assert.equal(seen.env.LATCHGATE_SECRET_TEST_CP, undefined, "the gate's environment stays with the gate");

  const failing = new CommandSink('script', [process.execPath, '-e', 'process.stderr.write("disk\\u001b[2J full\\n"); process.exit(3)'], 10_000);
  s.grow();
  const [f] = await s.publisher([failing]).publish();
  assert.match(f.error, /exited with code 3: disk\\u001b\[2J full$/, 'what it said, its controls shown as escapes');
  assert.doesNotMatch(s.warnings.join(''), /\u001b/, 'no control character reaches the terminal');
  const hanging = new CommandSink('script', [process.execPath, '-e', 'setTimeout(() => {}, 60000)'], 300);
  const [h] = await s.publisher([hanging]).publish();
  assert.match(h.error, /did not finish within 300 ms and was killed/);
  const missing = new CommandSink('script', [join(s.dir, 'no-such-program')], 10_000);
  const [m] = await s.publisher([missing]).publish();
  assert.match(m.error, /cannot run .*no-such-program: spawn .* ENOENT/);
  // A new publisher (a restarted gate) delivers what waits.
  const [again] = await s.publisher([sink]).publish();
  assert.deepEqual(again.delivered, [6]);
  assert.ok(existsSync(join(out, '6')));
});

test('an HTTPS endpoint: the note POSTed to a loopback server trusted through ca_file; an untrusted certificate or a non-2xx answer fails', { skip: NO_OPENSSL }, async (t) => {
  const s = setup(t);
  let status = 200;
  const up = await tlsUpstream([], (req, res) => {
    res.writeHead(status);
    res.end(status === 200 ? 'ok' : 'witness says no');
  });
  t.after(() => up.close());
  const url = new URL(`https://127.0.0.1:${up.port}/add-checkpoint`);
  const a = s.grow();
  const [o] = await s.publisher([new HttpsSink('witness', url, readFileSync(up.caFile, 'utf8'), 5000)]).publish();
  assert.equal(o.error, undefined, o.error);
  assert.equal(up.seen.length, 1);
  assert.equal(up.seen[0].method, 'POST');
  assert.equal(up.seen[0].body, a.note);
  assert.match(up.seen[0].headers['content-type'], /^text\/plain/);
  s.grow();
  const [untrusted] = await s.publisher([new HttpsSink('witness', url, undefined, 5000)]).publish();
  assert.match(untrusted.error, /POST https:\/\/127\.0\.0\.1:\d+\/add-checkpoint: .*(self.signed|unable to (get|verify))/i);
  assert.equal(up.seen.length, 1, 'nothing sent over a connection it does not trust');
  status = 500;
  const [refused] = await s.publisher([new HttpsSink('witness', url, readFileSync(up.caFile, 'utf8'), 5000)]).publish();
  assert.match(refused.error, /answered HTTP 500: witness says no/);
  status = 200;
  const [ok] = await s.publisher([new HttpsSink('witness', url, readFileSync(up.caFile, 'utf8'), 5000)]).publish();
  assert.deepEqual(ok.delivered, [6]);
});

test('sink sections: exactly one kind, https only, a directory that exists, a readable CA; errors name the section', (t) => {
  const dir = tempDir(t);
  const cfg = (body) => parseConfig(join(dir, 'latchgate.toml'), `[ledger.checkpoints.sinks.x]\n${body}\n`).gate.checkpoints.sinks;
  const refused = (body, ...patterns) => assertLaunchError(() => sinksFromConfig(cfg(body)), LaunchError, `${join(dir, 'latchgate.toml')}: [ledger.checkpoints.sinks.x]`, ...patterns);
  refused(`directory = "${dir}"\nurl = "https://a.example/"`, /exactly one of .* got directory and url/);
  refused('timeout_ms = 5', /got none/);
  refused('directory = "missing"', /directory .*missing does not exist; create it/);
  refused('url = "http://witness.example/"', /is not https/);
  refused('url = "https://user:pw@witness.example/"', /must not hold credentials/);
  refused('url = "not a url"', /is not a URL/);
  refused('url = "https://w.example/"\nca_file = "nope.pem"', /ca_file .*nope\.pem cannot be read \(ENOENT\)/);
  refused(`command = ["true"]\nca_file = "x.pem"`, /ca_file is for an HTTPS sink/);
  refused('command = []', /command must name a program/);
  // Relative paths are the file's; a good section of each kind gives its sink.
  mkdirSync(join(dir, 'out'));
  assert.deepEqual(sinksFromConfig(cfg('directory = "out"')).map((x) => x.dir), [join(dir, 'out')]);
  assert.deepEqual(sinksFromConfig(cfg('command = ["git", "-C", "/r", "commit"]\ntimeout_ms = 2000')).map((x) => [x.argv, x.timeoutMs]), [[['git', '-C', '/r', 'commit'], 2000]]);
  // The schema's own checks: the name, wrong types, typos, a zero timeout.
  const file = join(dir, 'latchgate.toml');
  assertLaunchError(() => parseConfig(file, '[ledger.checkpoints.sinks.log]\ndirectory = "/x"\n'), LaunchError, /\[ledger\.checkpoints\.sinks\.log\]: expected a name .*not "log"/);
  assertLaunchError(() => parseConfig(file, '[ledger.checkpoints.sinks.x]\ncommand = "git commit"\n'), LaunchError, /key "command": expected an array of strings/);
  assertLaunchError(() => parseConfig(file, '[ledger.checkpoints.sinks.x]\ndirectroy = "/x"\n'), LaunchError, /unknown key; did you mean "directory"/);
  assertLaunchError(() => parseConfig(file, '[ledger.checkpoints.sinks.x]\ncommand = ["x"]\ntimeout_ms = 0\n'), LaunchError, /timeout_ms.*expected a positive integer/);
  assertLaunchError(() => parseConfig(file, '[ledger.checkpoints]\nevery_seconds = -1\n'), LaunchError, /every_seconds.*expected an integer >= 0/);
  const d = parseConfig(file, '').gate.checkpoints;
  assert.deepEqual([d.everyEvents, d.everySeconds, d.sinks.size], [1000, 60, 0]);
});
