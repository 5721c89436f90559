// The files that open secrets (the age key file, a route's file: key) stay
// out of the box even when a box mount shows their directory, also after the
// host replaces them by rename while the box runs (what editors and atomic
// writers do: a mask on the file itself would fall off then). A key file in
// the workspace, or in a directory that is a mount root, refuses the launch.
// Next to it, the route that uses the file: key works, and the rest of the
// mounted tree is readable.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, runBox, own } from '../helpers/sandbox.mjs';
import { boxUpstream, credentialHome, haveOpenssl } from '../helpers/box-upstream.mjs';

const tag = `${process.pid}-${Date.now().toString(36)}`;
const AGE = `AGE-SECRET-KEY-1OLD${tag}`.toUpperCase();
const AGE_NEW = `AGE-SECRET-KEY-1NEW${tag}`.toUpperCase();
const FILE_KEY = `sk-filekey-old-${tag}`;
const FILE_KEY_NEW = `sk-filekey-new-${tag}`;
const dirs = [];
let pki;
let upstream;
const seen = [];

before(async () => {
  upstream = await boxUpstream('keyfiles', (req, res) => {
    seen.push(req.headers['x-api-key']);
    res.end('upstream ok\n');
  });
  pki = upstream?.pki;
});

after(() => {
  upstream?.close();
  cleanupWorkspaces();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A config home whose latchgate.toml names the age key file and a route with a file: key. */
function config(mode, { ageKeyFile, fileKey }) {
  const h = credentialHome(mode, 'keyfiles', upstream, { keySource: `file:${fileKey}`, head: ['[secrets]', `age_key_file = ${JSON.stringify(ageKeyFile)}`, ''], dirs });
  return { cfg: h.cfg, env: h.env };
}

/** Writes a key file owned by the test user, mode 600; by rename over the old one when there is one (as editors save). */
function writeKey(file, text) {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${text}\n`, { mode: 0o600 });
  own(tmp);
  renameSync(tmp, file);
}

/** A tree the box mounts read-only, with the key files in cfg/ and a file beside them. */
function keyTree() {
  const tree = makeWorkspace('keytree');
  const cfgDir = path.join(tree, 'cfg');
  mkdirSync(cfgDir, { mode: 0o700 });
  writeFileSync(path.join(tree, 'notes.txt'), 'beside the keys\n');
  own(tree);
  const age = path.join(cfgDir, 'age-key.txt');
  const fileKey = path.join(cfgDir, 'file-key.txt');
  writeKey(age, AGE);
  writeKey(fileKey, FILE_KEY);
  return { tree, cfgDir, age, fileKey };
}

const READ = (t) => `for f in ${t.age} ${t.fileKey}; do cat "$f" 2>&1; echo; done; ls -A ${t.cfgDir}; echo "ls=$?"; cat ${t.tree}/notes.txt`;
const BOX = (t, ca) => `
echo "==before"; ${READ(t)}
touch ready
i=0; while [ ! -e ${t.tree}/go ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done
echo "==after"; ${READ(t)}
curl -sS --max-time 10 --cacert ${ca} "$FAKE_BASE_URL/chat" -H 'x-api-key: placeholder'; echo "route=$?"
`;

for (const mode of MODES) {
  const skip = skipReason(mode) ?? (haveOpenssl() ? undefined : 'openssl is missing: cannot make the test certificates (make setup installs it)');

  test(`[${mode}] key files in a mounted tree stay unreadable, also after the host renames new ones over them; the file: route works`, { skip }, async () => {
    const t = keyTree();
    const h = config(mode, { ageKeyFile: t.age, fileKey: t.fileKey });
    const ws = makeWorkspace('keyfiles');
    seen.length = 0;
    const run = runBox(mode, { workspace: ws, env: h.env, args: ['--config', h.cfg, '--ro', t.tree, '--ro', path.dirname(pki.caFile)], cmd: ['/bin/sh', '-c', BOX(t, pki.caFile)], timeoutMs: 90000 });
    // The attack: while the box runs, the host saves both key files by rename.
    let settled = false;
    run.finally(() => (settled = true));
    while (!existsSync(path.join(ws, 'ready')) && !settled) await sleep(50);
    writeKey(t.age, AGE_NEW);
    writeKey(t.fileKey, FILE_KEY_NEW);
    writeFileSync(path.join(t.tree, 'go'), '');
    const r = await run;
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout;
    for (const secret of [AGE, AGE_NEW, FILE_KEY, FILE_KEY_NEW]) assert.ok(!out.includes(secret) && !r.stderr.includes(secret), `the box read ${secret}:\n${out}`);
    const [before, afterRename] = out.split('==after');
    for (const part of [before, afterRename]) {
      assert.match(part, /age-key\.txt: No such file or directory/, part);
      assert.match(part, /file-key\.txt: No such file or directory/, part);
      assert.match(part, /^ls=0$/m, 'the key directory lists, empty');
      assert.match(part, /^beside the keys$/m, 'the rest of the mounted tree is readable');
    }
    assert.match(out, /^upstream ok$/m, 'the route with the file: key works');
    assert.match(out, /^route=0$/m);
    assert.deepEqual(seen, [FILE_KEY], 'the upstream got the key read at launch');
  });

  test(`[${mode}] a key file in the workspace, or in a directory the box mounts as is, refuses the launch with the fix`, { skip }, async () => {
    const t = keyTree();
    const ws = makeWorkspace('keyfiles');
    const inWs = path.join(ws, 'file-key.txt');
    writeKey(inWs, FILE_KEY);
    const cases = [
      { what: 'file: key in the workspace', h: config(mode, { ageKeyFile: t.age, fileKey: inWs }), args: [] },
      { what: 'age key in the workspace', h: config(mode, { ageKeyFile: inWs, fileKey: t.fileKey }), args: ['--ro', t.tree] },
      { what: 'key directory is a --ro root', h: config(mode, { ageKeyFile: t.age, fileKey: t.fileKey }), args: ['--ro', t.cfgDir] },
    ];
    for (const c of cases) {
      const r = await runBox(mode, { workspace: ws, env: c.h.env, args: ['--config', c.h.cfg, ...c.args], cmd: ['/bin/cat', inWs, t.age, t.fileKey] });
      assert.equal(r.code, 125, `${c.what}: ${r.stderr}`);
      assert.match(r.stderr, /move the key file into a directory of its own/, c.what);
      for (const secret of [AGE, FILE_KEY]) assert.ok(!r.stdout.includes(secret), c.what);
    }
  });
}
