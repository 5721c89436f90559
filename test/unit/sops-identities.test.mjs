// Where age keys come from (src/secrets/identities.ts, locations.ts) and the
// [secrets] section of latchgate.toml.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateAgeIdentity } from '../../dist/secrets/age.js';
import { loadAgeIdentities } from '../../dist/secrets/identities.js';
import { secretsLocations } from '../../dist/secrets/locations.js';
import { SecretsError } from '../../dist/secrets/secret-values.js';
import { parseConfig } from '../../dist/config/latchgate-toml.js';
import { LaunchError } from '../../dist/core/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'lg-sops-ids-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const a = generateAgeIdentity();
const b = generateAgeIdentity();
const keyFile = (name, text, mode = 0o600) => {
  const f = join(dir, name);
  writeFileSync(f, text);
  chmodSync(f, mode);
  return f;
};
const code = (c, re) => (e) => e instanceof SecretsError && e.code === c && (!re || re.test(e.message));

test('keys come from $SOPS_AGE_KEY (several lines, comments), $SOPS_AGE_KEY_FILE and the configured file, all of them', () => {
  const inline = `# created: now\n# public key: ${a.recipient}\n${a.secretKey}\n\n`;
  assert.deepEqual(loadAgeIdentities({ env: { SOPS_AGE_KEY: inline } }).map((i) => i.publicKey), [a.recipient]);
  const f = keyFile('b.txt', `${b.secretKey}\n`);
  const both = loadAgeIdentities({ env: { SOPS_AGE_KEY: inline, SOPS_AGE_KEY_FILE: f } });
  assert.deepEqual(both.map((i) => i.publicKey), [a.recipient, b.recipient]);
  assert.deepEqual(loadAgeIdentities({ ageKeyFile: f, env: {} }).map((i) => i.publicKey), [b.recipient]);
  // The same key from two places counts once.
  assert.equal(loadAgeIdentities({ ageKeyFile: f, env: { SOPS_AGE_KEY: b.secretKey } }).length, 1);
});

test('no key anywhere: the error names each place looked at and how to make one', () => {
  const missing = join(dir, 'none.txt');
  assert.throws(() => loadAgeIdentities({ ageKeyFile: missing, env: {} }), (e) => code('no_identity')(e)
    && e.message.includes('$SOPS_AGE_KEY (unset)') && e.message.includes('$SOPS_AGE_KEY_FILE (unset)') && e.message.includes(missing) && /latchgate secrets init/.test(e.message));
  // A file named by $SOPS_AGE_KEY_FILE must be there.
  assert.throws(() => loadAgeIdentities({ env: { SOPS_AGE_KEY_FILE: missing } }), code('bad_identity', /ENOENT/));
});

test('a key file its group or others may read is refused with the fix; mode 0600 is read', () => {
  for (const mode of [0o640, 0o604, 0o660, 0o644]) {
    const f = keyFile(`m${mode.toString(8)}.txt`, `${a.secretKey}\n`, mode);
    assert.throws(() => loadAgeIdentities({ ageKeyFile: f, env: {} }), code('identity_file_permissions', /chmod 600/));
    assert.throws(() => loadAgeIdentities({ env: { SOPS_AGE_KEY_FILE: f } }), code('identity_file_permissions'));
  }
  assert.equal(loadAgeIdentities({ ageKeyFile: keyFile('ok.txt', a.secretKey, 0o600), env: {} }).length, 1);
  assert.equal(loadAgeIdentities({ ageKeyFile: keyFile('ro.txt', a.secretKey, 0o400), env: {} }).length, 1);
});

test('a mistyped key is refused naming the file and line, never skipped', () => {
  const broken = a.secretKey.slice(0, -2) + (a.secretKey.endsWith('Q') ? 'PP' : 'QQ');
  const f = keyFile('bad.txt', `# comment\n${b.secretKey}\n${broken}\n`);
  assert.throws(() => loadAgeIdentities({ ageKeyFile: f, env: {} }), (e) => code('bad_identity')(e) && e.message.includes(`${f} line 3`));
  assert.throws(() => loadAgeIdentities({ env: { SOPS_AGE_KEY: 'age1notakey' } }), code('bad_identity', /\$SOPS_AGE_KEY line 1/));
  assert.throws(() => loadAgeIdentities({ env: { SOPS_AGE_KEY: 'AGE-PLUGIN-YUBIKEY-1QQQQQQ' } }), code('unsupported_recipient', /plugin yubikey/));
});

test('secretsLocations: [secrets] paths, else $XDG_CONFIG_HOME/latchgate, else ~/.config/latchgate', () => {
  assert.deepEqual(secretsLocations({}, { XDG_CONFIG_HOME: '/x', HOME: '/h' }), { sopsFile: '/x/latchgate/secrets.enc.yaml', ageKeyFile: '/x/latchgate/age-key.txt' });
  assert.deepEqual(secretsLocations({}, { HOME: '/h' }), { sopsFile: '/h/.config/latchgate/secrets.enc.yaml', ageKeyFile: '/h/.config/latchgate/age-key.txt' });
  const cfg = parseConfig('/etc/lg/latchgate.toml', '[secrets]\nsops_file = "s.yaml"\nage_key_file = "/k/key.txt"\ncache_seconds = 30\n');
  assert.deepEqual(cfg.secrets, { sopsFile: '/etc/lg/s.yaml', ageKeyFile: '/k/key.txt', cacheSeconds: 30 });
  assert.deepEqual(secretsLocations(cfg, { HOME: '/h' }), { sopsFile: '/etc/lg/s.yaml', ageKeyFile: '/k/key.txt' });
  assert.equal(parseConfig('/etc/lg/latchgate.toml', '').secrets.cacheSeconds, 300);
  assert.throws(() => parseConfig('/etc/lg/latchgate.toml', '[secrets]\ncache_seconds = -1\n'), (e) => e instanceof LaunchError && /cache_seconds/.test(e.message));
  assert.throws(() => parseConfig('/etc/lg/latchgate.toml', '[secrets]\nsops_fle = "x"\n'), (e) => e instanceof LaunchError && /sops_file/.test(e.message));
});
