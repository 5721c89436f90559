// docs/CONFIG.md is made from the declarations of latchgate.toml and the
// agent profiles (scripts/gen-config-docs.mjs): it must be the script's
// current output, every key must say what it means, and the defaults it
// shows must be the ones the code uses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { CONFIG_MD, render } from '../../scripts/gen-config-docs.mjs';
import { LATCHGATE_TOML } from '../../dist/config/latchgate-toml.js';
import { PROFILE_TOML } from '../../dist/config/profiles.js';
import { leaves, sections } from '../../dist/config/toml-schema.js';
import { DEFAULTS } from '../../dist/gate/defaults.js';
import { DEFAULT_NOFILE, DEFAULT_NPROC, DEFAULT_TMP_SIZE } from '../../dist/sandbox/plan.js';

test('docs/CONFIG.md is the generator\'s current output', () => {
  const written = existsSync(CONFIG_MD) ? readFileSync(CONFIG_MD, 'utf8') : '(missing)';
  assert.ok(written === render(), 'docs/CONFIG.md is stale: run `npx tsc -p tsconfig.json && node scripts/gen-config-docs.mjs` and commit the result');
});

test('every key and section is documented, and every key is in the table', () => {
  const md = render();
  for (const decl of [LATCHGATE_TOML, PROFILE_TOML]) {
    for (const l of leaves(decl)) {
      assert.ok(l.doc.length > 10, `${l.path.join('.')}: no meaning`);
      assert.ok(md.includes(`| \`${l.shownPath.at(-1)}\` |`), `${l.path.join('.')} is not in the table`);
    }
    for (const s of sections(decl)) if (s.shownPath.length > 0) assert.ok(s.doc !== '' || leaves(decl).some((l) => l.shownPath.join('.').startsWith(`${s.shownPath.join('.')}.`)), s.shownPath.join('.'));
  }
});

test('the defaults shown are the ones the gate and the box use', () => {
  const shown = new Map(leaves(LATCHGATE_TOML).map((l) => [l.path.join('.'), l.options.shown]));
  const expect = {
    'gate.public_base_url': `\`"${DEFAULTS.publicBaseUrl}"\``,
    'gate.lease_ttl_seconds': `\`${DEFAULTS.leaseTtlSeconds}\``,
    'gate.max_body_bytes': `\`${DEFAULTS.maxBodyBytes}\``,
    'gate.approval_ttl_seconds': `\`${DEFAULTS.approvalTtlSeconds}\``,
    'sandbox.limits.nofile': `\`${DEFAULT_NOFILE}\``,
    'sandbox.limits.nproc': `\`${DEFAULT_NPROC}\``,
    'sandbox.limits.tmp_size': `\`"${DEFAULT_TMP_SIZE}"\``,
  };
  for (const [key, want] of Object.entries(expect)) assert.equal(shown.get(key), want, key);
});
