// docs/ARCHITECTURE.md and the README's layout are the map of the tree: they
// must name every layer, in the order the layer check enforces, and every
// file they name must exist.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAYERS } from '../../scripts/check-layers.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const arch = readFileSync(join(ROOT, 'docs/ARCHITECTURE.md'), 'utf8');
const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
const dirs = readdirSync(join(ROOT, 'src'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);

test('the layer table lists every src/ directory, bottom first, in the order scripts/check-layers.mjs enforces', () => {
  const rows = [...arch.matchAll(/^\| `([a-z-]+)\/` \|/gm)].map((m) => m[1]);
  assert.deepEqual(rows, LAYERS);
  assert.deepEqual([...dirs].sort(), [...LAYERS].sort());
});

test("the README's layout names every src/ directory", () => {
  const layout = readme.slice(readme.indexOf('- Layout'));
  for (const d of dirs) assert.ok(layout.includes(`\`src/${d}/\``), `README layout lacks src/${d}/`);
});

test('every file or directory the architecture names exists', () => {
  const named = new Set([...arch.matchAll(/`((?:src|native|scripts|test|docs)\/[\w./*-]+)`/g)].map((m) => m[1]));
  assert.ok(named.size > 40, `only ${named.size} paths named`);
  for (const p of named) {
    if (p.includes('*')) continue;
    assert.ok(existsSync(join(ROOT, p)), `docs/ARCHITECTURE.md names ${p}, which does not exist`);
  }
  // Bare file names in a row continue the directory named first in that cell.
  for (const line of arch.split('\n').filter((l) => l.startsWith('|'))) {
    for (const cell of line.split('|')) {
      let dir;
      for (const m of cell.matchAll(/`([\w./-]+\.(?:ts|cc|h|json|mjs))`/g)) {
        if (m[1].includes('/')) dir = m[1].slice(0, m[1].lastIndexOf('/'));
        else if (dir) assert.ok(existsSync(join(ROOT, dir, m[1])), `docs/ARCHITECTURE.md names ${dir}/${m[1]}, which does not exist`);
      }
    }
  }
});

test('every stage of the gate pipeline is in the architecture, in order', async () => {
  const { STAGE_NAMES } = await import('../../dist/gate/pipeline.js');
  const at = STAGE_NAMES.map((n) => arch.indexOf(`\`${n}\``));
  assert.ok(at.every((i) => i > 0), `missing: ${STAGE_NAMES.filter((_, k) => at[k] < 0).join(', ')}`);
  assert.deepEqual([...at].sort((a, b) => a - b), at);
});
