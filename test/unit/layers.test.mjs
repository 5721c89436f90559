// The import direction of src/ (scripts/check-layers.mjs, run by `make lint`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const script = new URL('../../scripts/check-layers.mjs', import.meta.url).pathname;
const check = (dir) => spawnSync(process.execPath, [script, ...(dir ? [dir] : [])], { encoding: 'utf8' });

test('the repository\'s src/ has no import pointing up a layer', () => {
  const r = check();
  assert.equal(r.status, 0, r.stderr);
});

test('an import from a lower layer into a higher one is refused, naming the file and the order', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lg-layers-'));
  try {
    const put = (rel, text) => {
      mkdirSync(join(dir, rel, '..'), { recursive: true });
      writeFileSync(join(dir, rel), text);
    };
    put('core/a.ts', "export const a = 1;\n");
    put('gate/g.ts', "import { a } from '../core/a.js';\nexport const g = a;\n");
    put('cli/c.ts', "export const c = 1;\n");
    assert.equal(check(dir).status, 0, 'downward imports are fine');
    // Multi-line, type-only and dynamic imports are all seen.
    put('ledger/l.ts', "import type {\n  g,\n} from '../gate/g.js';\nexport const l = 1;\n");
    put('sandbox/s.ts', "export const s = await import('../cli/c.js');\n");
    put('newdir/n.ts', 'export {};\n');
    const r = check(dir);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /ledger\/l\.ts imports src\/gate\/g\.js: ledger\/ may not depend on gate\//);
    assert.match(r.stderr, /sandbox\/s\.ts imports src\/cli\/c\.js: sandbox\/ may not depend on cli\//);
    assert.match(r.stderr, /src\/newdir\/ is not in the layer list/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
