// Writing secrets files (src/secrets/secrets-file.ts, sops-write.ts,
// atomic-write.ts) and the `latchgate secrets` command: each operation on a
// real file read back by the checking reader, a crash between every step of
// the atomic write, and the command refusing values on argv and on a
// terminal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateAgeIdentity, parseAgeIdentity } from '../../dist/secrets/age.js';
import { ATOMIC_STEPS } from '../../dist/secrets/atomic-write.js';
import { withFileLock } from '../../dist/secrets/file-lock.js';
import { loadAgeIdentities } from '../../dist/secrets/identities.js';
import { openSopsFile } from '../../dist/secrets/sops-read.js';
import { addRecipient, getSecret, initSecrets, listSecrets, removeRecipient, removeSecret, rotateDataKey, setSecret } from '../../dist/secrets/secrets-file.js';
import { secretValues, SecretsError } from '../../dist/secrets/secret-values.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(root, 'dist/cli/main.js');
const CHILD = join(root, 'test/fixtures/unit/sops-crash-child.mjs');
const dir = mkdtempSync(join(tmpdir(), 'lg-sops-write-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const code = (c, re) => (e) => e instanceof SecretsError && e.code === c && (!re || re.test(e.message));

async function fresh() {
  const d = join(dir, `f${n++}`);
  const sopsFile = join(d, 'secrets.enc.yaml');
  const ageKeyFile = join(d, 'age-key.txt');
  const { recipient } = await initSecrets({ sopsFile, ageKeyFile });
  return { sopsFile, ageKeyFile, recipient, identities: loadAgeIdentities({ ageKeyFile, env: {} }) };
}

test('init makes a 0600 identity and an empty file encrypted to it, and overwrites neither', async () => {
  const f = await fresh();
  assert.equal(statSync(f.ageKeyFile).mode & 0o777, 0o600);
  assert.equal(statSync(f.sopsFile).mode & 0o777, 0o600);
  const before = [readFileSync(f.ageKeyFile), readFileSync(f.sopsFile)];
  assert.deepEqual((await openSopsFile({ file: f.sopsFile, identities: f.identities })).document.tree, {});
  await assert.rejects(initSecrets(f), code('exists', /overwrites nothing/));
  rmSync(f.sopsFile);
  await assert.rejects(initSecrets(f), code('exists'), 'the key file alone blocks it too');
  assert.deepEqual(readFileSync(f.ageKeyFile), before[0]);
});

test('set, get, list, remove: values read back through every check; names are UPPER_SNAKE_CASE', async () => {
  const f = await fresh();
  const ref = { sopsFile: f.sopsFile, identities: f.identities };
  await setSecret(ref, 'API_KEY', 'one', new Date('2025-01-02T03:04:05Z'));
  await setSecret(ref, 'OTHER_2', 'two', new Date('2025-02-02T03:04:05Z'));
  await setSecret(ref, 'API_KEY', 'three', new Date('2025-03-02T03:04:05Z'));
  assert.equal(await getSecret(ref, 'API_KEY'), 'three');
  const l = await listSecrets(ref);
  assert.deepEqual(l.secrets, [{ name: 'API_KEY', changed: '2025-03-02T03:04:05Z' }, { name: 'OTHER_2', changed: '2025-02-02T03:04:05Z' }]);
  assert.ok(!JSON.stringify(l).includes('three'), 'list shows no value');
  const text = readFileSync(f.sopsFile, 'utf8');
  assert.ok(!text.includes('three') && !text.includes('two'), 'no plaintext value in the file');
  for (const bad of ['api_key', '1KEY', 'A-B', '', 'KEY ', 'ÄKEY']) await assert.rejects(setSecret(ref, bad, 'x'), code('bad_name', /UPPER_SNAKE_CASE/));
  await assert.rejects(setSecret(ref, 'EMPTY', ''), code('bad_value'));
  await removeSecret(ref, 'API_KEY');
  await assert.rejects(getSecret(ref, 'API_KEY'), code('no_such_secret'));
  await assert.rejects(removeSecret(ref, 'API_KEY'), code('no_such_secret'));
  assert.deepEqual((await listSecrets(ref)).secrets.map((s) => s.name), ['OTHER_2']);
  assert.ok(!readFileSync(f.sopsFile, 'utf8').includes('API_KEY'), 'its change time went with it');
});

test('the file keeps its mode across a rewrite', async () => {
  const f = await fresh();
  chmodSync(f.sopsFile, 0o640);
  await setSecret({ sopsFile: f.sopsFile, identities: f.identities }, 'K', 'v');
  assert.equal(statSync(f.sopsFile).mode & 0o777, 0o640);
});

test('recipients: add lets the new key read; remove replaces the data key, refuses the last one and a lockout unless forced', async () => {
  const f = await fresh();
  const ref = { sopsFile: f.sopsFile, identities: f.identities };
  await setSecret(ref, 'K', 'v1');
  const other = generateAgeIdentity();
  const otherIds = [parseAgeIdentity(other.secretKey, 'other')];
  await assert.rejects(getSecret({ sopsFile: f.sopsFile, identities: otherIds }, 'K'), code('no_matching_identity'));
  const keyBefore = (await openSopsFile({ file: f.sopsFile, identities: f.identities })).dataKey;
  await addRecipient(ref, other.recipient);
  assert.equal(await getSecret({ sopsFile: f.sopsFile, identities: otherIds }, 'K'), 'v1');
  assert.ok((await openSopsFile({ file: f.sopsFile, identities: otherIds })).dataKey.equals(keyBefore), 'add keeps the data key');
  await assert.rejects(addRecipient(ref, other.recipient), code('exists'));
  await assert.rejects(addRecipient(ref, 'age1pq1xyz'), (e) => e instanceof SecretsError);
  // Removing our own recipient would lock us out.
  await assert.rejects(removeRecipient(ref, f.recipient), code('lockout', /--force/));
  await removeRecipient(ref, other.recipient);
  await assert.rejects(getSecret({ sopsFile: f.sopsFile, identities: otherIds }, 'K'), code('no_matching_identity'));
  const keyAfter = (await openSopsFile({ file: f.sopsFile, identities: f.identities })).dataKey;
  assert.ok(!keyAfter.equals(keyBefore), 'the removed holder\'s copy of the data key opens nothing new');
  await assert.rejects(removeRecipient(ref, f.recipient, true), code('last_recipient'));
  await assert.rejects(removeRecipient(ref, other.recipient), code('no_such_recipient'));
  // With --force, a lockout is done as asked: the other key reads, ours no longer.
  await addRecipient(ref, other.recipient);
  await removeRecipient(ref, f.recipient, true);
  assert.equal(await getSecret({ sopsFile: f.sopsFile, identities: otherIds }, 'K'), 'v1');
  await assert.rejects(getSecret(ref, 'K'), code('no_matching_identity'));
});

test('rotate: a new data key, every value the same', async () => {
  const f = await fresh();
  const ref = { sopsFile: f.sopsFile, identities: f.identities };
  await setSecret(ref, 'A', 'x');
  await setSecret(ref, 'B', 'y');
  const before = await openSopsFile({ file: f.sopsFile, identities: f.identities });
  await rotateDataKey(ref);
  const after = await openSopsFile({ file: f.sopsFile, identities: f.identities });
  assert.ok(!after.dataKey.equals(before.dataKey));
  assert.deepEqual(secretValues(after.document), secretValues(before.document));
  assert.deepEqual((await listSecrets(ref)).secrets.map((s) => s.name), ['A', 'B']);
});

test('a crash after any step of the atomic write leaves a whole file that decrypts: the old one before the rename, the new one after', async () => {
  for (const step of ATOMIC_STEPS) {
    const f = await fresh();
    const ref = { sopsFile: f.sopsFile, identities: f.identities };
    await setSecret(ref, 'K', 'old');
    const r = spawnSync(process.execPath, [CHILD, f.sopsFile, f.ageKeyFile, 'K', 'new', step], { encoding: 'utf8' });
    assert.equal(r.signal, 'SIGKILL', `the child died at ${step}: ${r.stderr}`);
    const expected = ATOMIC_STEPS.indexOf(step) < ATOMIC_STEPS.indexOf('renamed') ? 'old' : 'new';
    assert.equal(await getSecret(ref, 'K'), expected, `after a crash at ${step}`);
    assert.equal(statSync(f.sopsFile).mode & 0o777, 0o600);
  }
});

test('the atomic write, as the kernel sees it (strace): temp file created exclusively, written, fsynced, renamed over the file, then the directory fsynced', () => {
  const d = join(dir, `st${n++}`);
  mkdirSync(d);
  assert.equal(cli(d, ['init']).status, 0);
  const file = join(d, 'config/latchgate/secrets.enc.yaml');
  const log = join(d, 'strace.log');
  const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=openat,write,pwrite64,writev,fsync,fdatasync,rename,renameat,renameat2', '-o', log, process.execPath, CLI, 'secrets', 'set', 'K'], { env: cliEnv(d), input: 'v', encoding: 'utf8', cwd: d });
  assert.equal(r.status, 0, r.stderr);
  const calls = readFileSync(log, 'utf8').split('\n').map((l) => l.replace(/^\d+\s+/, '')).filter((l) => !l.startsWith('<...'));
  const at = (re, from = 0) => {
    const i = calls.findIndex((l, k) => k >= from && re.test(l));
    assert.ok(i >= 0, `no ${re} after call ${from} in:\n${calls.slice(from).filter((l) => l.includes(d) || /fsync|fdatasync/.test(l)).join('\n')}`);
    return i;
  };
  const esc = (t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const created = at(new RegExp(`^openat\\(AT_FDCWD, "(${esc(join(d, 'config/latchgate/.secrets.enc.yaml.'))}[0-9a-f]+\\.tmp)", [^)]*O_CREAT\\|O_EXCL[^)]*\\) = (\\d+)`));
  const [, tmp, fd] = /"([^"]+)".* = (\d+)$/.exec(calls[created]);
  const written = at(new RegExp(`^(p?write|writev|pwrite64)\\(${fd},`), created);
  const synced = at(new RegExp(`^f(data)?sync\\(${fd}[,)< ]`), written);
  const renamed = at(new RegExp(`^rename(at2?)?\\(.*"${esc(tmp)}", .*"${esc(file)}"`), synced);
  const dirOpened = at(new RegExp(`^openat\\(AT_FDCWD, "${esc(join(d, 'config/latchgate'))}", O_RDONLY[^)]*\\) = (\\d+)`), renamed);
  const dirFd = /= (\d+)$/.exec(calls[dirOpened])[1];
  at(new RegExp(`^f(data)?sync\\(${dirFd}[,)< ]`), dirOpened);
});

// --- the command -----------------------------------------------------------

function cliEnv(d) {
  return { PATH: process.env.PATH, HOME: d, XDG_CONFIG_HOME: join(d, 'config'), XDG_STATE_HOME: join(d, 'state'), XDG_RUNTIME_DIR: join(d, 'run') };
}
const cli = (d, args, input) => spawnSync(process.execPath, [CLI, 'secrets', ...args], { env: cliEnv(d), input: input ?? '', encoding: 'utf8', cwd: d });

test('latchgate secrets: values only from stdin, never argv; a terminal gets no value without --reveal; exit codes', () => {
  const d = join(dir, `cli${n++}`);
  mkdirSync(d);
  assert.equal(cli(d, ['init']).status, 0);
  const again = cli(d, ['init']);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /exists already/);
  assert.equal(cli(d, ['set', 'API_KEY'], 'sk-secret-1\n').status, 0);
  const file = join(d, 'config/latchgate/secrets.enc.yaml');
  const before = readFileSync(file, 'utf8');
  const argv = cli(d, ['set', 'API_KEY', 'sk-on-argv']);
  assert.equal(argv.status, 1);
  assert.match(argv.stderr, /never taken from the command line/);
  assert.equal(readFileSync(file, 'utf8'), before, 'nothing written');
  const badName = cli(d, ['set', 'api-key'], 'x');
  assert.equal(badName.status, 1);
  assert.match(badName.stderr, /UPPER_SNAKE_CASE/);
  const got = cli(d, ['get', 'API_KEY']);
  assert.equal(got.status, 0);
  assert.equal(got.stdout, 'sk-secret-1', 'to a pipe: the value exactly, the shell\'s newline dropped');
  const list = cli(d, ['list', '--json']);
  assert.equal(list.status, 0);
  assert.deepEqual(JSON.parse(list.stdout).secrets.map((s) => s.name), ['API_KEY']);
  assert.ok(!list.stdout.includes('sk-secret-1'));
  assert.equal(cli(d, ['get', 'NOPE']).status, 1);
  // On a terminal (script(1) gives the command a pty): refused without --reveal.
  const onTty = (args) => spawnSync('script', ['-qec', [process.execPath, CLI, 'secrets', ...args].join(' '), '/dev/null'], { env: cliEnv(d), encoding: 'utf8', cwd: d });
  const tty = onTty(['get', 'API_KEY']);
  assert.notEqual(tty.status, 0);
  assert.match(tty.stdout, /not printing API_KEY to a terminal/);
  assert.ok(!tty.stdout.includes('sk-secret-1'));
  assert.match(onTty(['get', 'API_KEY', '--reveal']).stdout, /sk-secret-1/);
  // --config with [secrets] paths relative to it; the user's own config needs no trust record.
  writeFileSync(join(d, 'config/latchgate/latchgate.toml'), '[secrets]\nsops_file = "other.enc.yaml"\nage_key_file = "other-key.txt"\n');
  assert.equal(cli(d, ['init', '--config', join(d, 'config/latchgate/latchgate.toml')]).status, 0);
  assert.ok(readdirSync(join(d, 'config/latchgate')).includes('other.enc.yaml'));
  const help = spawnSync(process.execPath, [CLI, 'secrets', 'set', '--help'], { encoding: 'utf8' });
  assert.match(help.stdout, /stdin/);
});

test('latchgate secrets set on a terminal: the value typed at a prompt with echo off is set, and never shown', async () => {
  const d = join(dir, `cli${n++}`);
  mkdirSync(d);
  assert.equal(cli(d, ['init']).status, 0);
  const typed = 'sk-typed-at-the-prompt-42';
  // script(1) gives the command a pty; everything the terminal shows comes back on its stdout.
  const c = spawn('script', ['-qec', [process.execPath, CLI, 'secrets', 'set', 'TYPED_KEY'].join(' '), '/dev/null'], { env: cliEnv(d), cwd: d, stdio: ['pipe', 'pipe', 'pipe'] });
  let screen = '';
  const closed = new Promise((resolve) => c.on('close', resolve));
  await new Promise((resolve, reject) => {
    c.stdout.on('data', (b) => {
      screen += b;
      if (screen.includes('value of TYPED_KEY: ')) resolve();
    });
    c.on('close', () => reject(new Error(`no prompt: ${screen}`)));
  });
  // Typed only once the prompt is up: echo is off by then.
  c.stdin.write(`${typed}\r`);
  const status = await closed;
  assert.equal(status, 0, screen);
  assert.match(screen, /set TYPED_KEY in /);
  assert.ok(!screen.includes(typed), `the terminal showed the value: ${JSON.stringify(screen)}`);
  const got = cli(d, ['get', 'TYPED_KEY']);
  assert.equal(got.stdout, typed, got.stderr);
});

test('concurrent changes all land: eight processes set eight names at once, each holding the file lock in turn', async () => {
  const f = await fresh();
  const names = Array.from({ length: 8 }, (_, i) => `CONCURRENT_${i}`);
  const runs = names.map(
    (name) =>
      new Promise((resolve) => {
        const c = spawn(process.execPath, [CLI, 'secrets', 'set', name, '--file', f.sopsFile, '--age-key-file', f.ageKeyFile], { stdio: ['pipe', 'ignore', 'pipe'] });
        let err = '';
        c.stderr.on('data', (b) => (err += b));
        c.on('close', (status) => resolve({ name, status, err }));
        c.stdin.end(`value-of-${name}\n`);
      }),
  );
  for (const r of await Promise.all(runs)) assert.equal(r.status, 0, `${r.name}: ${r.err}`);
  for (const name of names) assert.equal(await getSecret(f, name), `value-of-${name}`);
  assert.ok(!existsSync(`${f.sopsFile}.lock`), 'the lock is released');
});

test('the file lock: a dead holder\'s lock is taken over; a live holder is waited for, then refused naming it', async () => {
  const f = await fresh();
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  writeFileSync(`${f.sopsFile}.lock`, `${dead.stdout}\n`);
  await setSecret(f, 'AFTER_CRASH', 'v1');
  assert.equal(await getSecret(f, 'AFTER_CRASH'), 'v1');
  writeFileSync(`${f.sopsFile}.lock`, `${process.pid}\n`); // alive: this process
  await assert.rejects(withFileLock(f.sopsFile, async () => 'never', 100), code('locked', new RegExp(`pid ${process.pid}`)));
  rmSync(`${f.sopsFile}.lock`);
  assert.equal(await withFileLock(f.sopsFile, async () => 'ran'), 'ran');
});
