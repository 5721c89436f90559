// A credential route whose key is in the SOPS secrets file (key_source
// "sops:FAKE_API_KEY"), end to end, as root and as an unprivileged launcher.
// The launcher decrypts it on the host; the upstream (a local HTTPS server)
// gets it; its echo of the key, in tricky encodings, comes back redacted.
// The config directory holding the SOPS file and the age key is mounted
// into the box read-only (--ro), the way a careless --ro of ~/.config would:
// both files read as empty there. Then everything the box can see is
// searched for the key in every form: its environment, /proc/*/environ and
// /proc/*/cmdline of every process it sees, every file it can read under
// HOME, /tmp, /var/tmp, /dev/shm, /etc, the workspace, /run/latchgate and the
// mounted config directory; and `--dry-run` and `--print-profile` output.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { MODES, skipReason, makeWorkspace, cleanupWorkspaces, runBox } from '../helpers/sandbox.mjs';
import { boxUpstream, cliAs as cli, credentialHome, haveOpenssl } from '../helpers/box-upstream.mjs';
import { leaks } from '../helpers/secrets-gate.mjs';

/** With a quote and a backslash, so its JSON-escaped form differs. */
const KEY = `sk-sops-${randomBytes(12).toString('hex')}-"q\\b`;
const dirs = [];
let pki;
let upstream;
const seen = [];

/** The key as an upstream might echo it: base64url at an odd offset, hex upper case, \u-escaped JSON, percent-encoded twice. */
function trickyEcho(key) {
  const b = Buffer.from(key);
  const jsonU = [...key].map((c, i) => (i % 3 === 0 ? `\\u00${c.charCodeAt(0).toString(16).padStart(2, '0')}` : JSON.stringify(c).slice(1, -1))).join('');
  return [
    `b64=${Buffer.concat([Buffer.from('x'), b, Buffer.from('yz')]).toString('base64url')}`,
    `hex=${b.toString('hex').toUpperCase()}`,
    `json="${jsonU}"`,
    `pct=${encodeURIComponent(encodeURIComponent(key))}`,
    `plain=${key}`,
  ].join('\n');
}

before(async () => {
  upstream = await boxUpstream('secbox', (req, res) => {
    const key = req.headers['x-api-key'];
    seen.push(key);
    res.setHeader('content-type', 'text/plain');
    res.setHeader('x-echo', String(key));
    res.end(`upstream got:\n${key ? trickyEcho(key) : '-'}\n`);
  });
  pki = upstream?.pki;
});

after(() => {
  upstream?.close();
  cleanupWorkspaces();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A home whose latchgate.toml routes "fake" to the upstream with the key from the SOPS file, written by latchgate secrets. */
function home(mode) {
  const h = credentialHome(mode, 'secbox', upstream, { keySource: 'sops:FAKE_API_KEY', head: ['[sandbox.agent]', 'allow_hosts = ["api.example.test"]', ''], dirs });
  chmodSync(h.home, 0o755);
  for (const [args, input] of [[['secrets', 'init'], ''], [['secrets', 'set', 'FAKE_API_KEY'], KEY]]) {
    const r = cli(mode, [...args, '--config', h.cfg], h.env, input);
    assert.equal(r.status, 0, r.stderr);
  }
  return { cfg: h.cfg, cfgDir: h.cfgDir, env: h.env, ageKeyFile: path.join(h.cfgDir, 'age-key.txt'), sopsFile: path.join(h.cfgDir, 'secrets.enc.yaml') };
}

// Inside the box: call the route, try to read the secret files, then dump
// everything readable the test searches (a record per source, so a leak names it).
const SCRIPT = (cfgDir) => `
curl -sS --max-time 10 "$FAKE_BASE_URL/echo" -H 'x-api-key: placeholder' -D - ; echo "route=$?"
for f in ${cfgDir}/age-key.txt ${cfgDir}/secrets.enc.yaml; do echo "size $f=$(cat $f 2>/dev/null | wc -c)"; done
echo "listing=$(ls -A ${cfgDir} 2>/dev/null | wc -l)"
/usr/bin/node -e '
const fs = require("fs"), path = require("path");
const dump = (label, data) => console.log("=== " + label + "\\n" + data);
dump("env", JSON.stringify(process.env));
for (const pid of fs.readdirSync("/proc").filter((p) => /^\\d+$/.test(p))) {
  for (const f of ["environ", "cmdline"]) { try { dump("/proc/" + pid + "/" + f, fs.readFileSync("/proc/" + pid + "/" + f, "latin1")); } catch (e) { dump("/proc/" + pid + "/" + f, "unreadable " + e.code); } }
}
const walk = (d, depth = 0) => {
  let list; try { list = fs.readdirSync(d, { withFileTypes: true }); } catch { return; }
  for (const e of list) {
    const p = path.join(d, e.name);
    if (e.isDirectory() && depth < 8) walk(p, depth + 1);
    else if (e.isFile()) { try { if (fs.statSync(p).size < 4 << 20) dump(p, fs.readFileSync(p, "latin1")); } catch {} }
  }
};
for (const d of [process.env.HOME, "/tmp", "/var/tmp", "/dev/shm", "/etc", process.cwd(), "/run/latchgate", process.argv[1]]) walk(d);
' ${cfgDir}
`;

for (const mode of MODES) {
  test(`[${mode}] a sops: credential route: the upstream gets the key, the box sees it nowhere, nor the secrets file or age key`, { skip: skipReason(mode) ?? (haveOpenssl() ? undefined : 'openssl is missing: cannot make the test certificates (make setup installs it)') }, async () => {
    const h = home(mode);
    const ws = makeWorkspace('secbox');
    const ageKey = readFileSync(h.ageKeyFile, 'utf8').match(/AGE-SECRET-KEY-1[0-9A-Z]+/)[0];
    const sopsText = readFileSync(h.sopsFile, 'utf8');
    const encValue = sopsText.match(/FAKE_API_KEY: (ENC\[[^\]]+\])/)[1];
    seen.length = 0;
    const r = await runBox(mode, { workspace: ws, env: h.env, args: ['--config', h.cfg, '--ro', path.dirname(pki.caFile), '--ro', path.dirname(h.cfgDir)], cmd: ['/bin/sh', '-c', SCRIPT(h.cfgDir)], timeoutMs: 60000 });
    assert.equal(r.code, 0, r.stderr);
    const out = r.stdout;
    // The route works: the upstream got the key from the SOPS file, decrypted on the host.
    assert.deepEqual(seen, [KEY]);
    assert.match(out, /^route=0$/m, out.slice(0, 2000));
    assert.match(out, /^upstream got:$/m);
    assert.match(out, /^b64=[\w-]*\[redacted\][\w-]*$/m, 'the key echoed in base64url at an odd offset is redacted');
    for (const form of ['hex', 'json', 'pct', 'plain']) assert.match(out, new RegExp(`^${form}="?\\[redacted\\]"?$`, 'm'), `the key echoed as ${form}`);
    assert.match(out, /^x-echo: \[redacted\]/im);
    // The key's whole directory is covered in the box (empty), the secret files with it.
    assert.match(out, new RegExp(`^size ${h.ageKeyFile}=0$`, 'm'), 'the age key file is readable in the box');
    assert.match(out, new RegExp(`^size ${h.sopsFile}=0$`, 'm'), 'the SOPS file is readable in the box');
    assert.match(out, /^listing=0$/m, "the age key's directory is not covered in the box");
    assert.ok(out.includes('=== /proc/1/environ'), 'the walk did not read /proc');
    assert.ok(out.includes('=== /etc/passwd'), 'the walk did not read /etc, where the launcher writes files');
    assert.ok(!out.includes(ageKey), 'the age secret key is readable in the box');
    assert.ok(!out.includes(encValue), "the SOPS file's content is readable in the box");
    // No form of the key anywhere the box can see, nor in what the launcher printed.
    for (const section of out.split(/^=== /m)) assert.deepEqual(leaks(section, KEY), [], `the key is in the box: ${section.split('\n')[0]}`);
    assert.deepEqual(leaks(r.stderr, KEY), []);
    // The plan and the profile name the source, never the key.
    const dry = await runBox(mode, { workspace: ws, env: h.env, args: ['--config', h.cfg, '--dry-run'], cmd: ['true'] });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /sops:FAKE_API_KEY/);
    assert.deepEqual(leaks(dry.stdout + dry.stderr, KEY), []);
    const profile = await runBox(mode, { workspace: ws, env: h.env, args: ['--config', h.cfg, '--profile', 'aider', '--print-profile'] });
    assert.equal(profile.code, 0, profile.stderr);
    assert.match(profile.stdout, /sops:FAKE_API_KEY/);
    assert.deepEqual(leaks(profile.stdout + profile.stderr, KEY), []);
  });
}

test('[user] a secrets file that does not decrypt ends the launch before the box is made, naming the file and the fix', { skip: haveOpenssl() ? undefined : 'openssl is missing' }, async () => {
  const h = home('user');
  writeFileSync(h.sopsFile, readFileSync(h.sopsFile, 'utf8').replace(/(FAKE_API_KEY: ENC\[AES256_GCM,data:)(.)/, (_, a, c) => a + (c === 'A' ? 'B' : 'A')));
  const ws = makeWorkspace('secbox');
  const r = await runBox('user', { workspace: ws, env: h.env, args: ['--config', h.cfg], cmd: ['/bin/sh', '-c', 'echo box-ran'] });
  assert.equal(r.code, 125, r.stderr);
  assert.doesNotMatch(r.stdout, /box-ran/);
  assert.match(r.stderr, /latchgate sandbox does not start: the default secrets file \(it exists\) cannot be used \(value_auth_failed\)/);
  assert.ok(r.stderr.includes(h.sopsFile), r.stderr);
});
