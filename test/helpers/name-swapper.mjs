// Puts two different files in turn at <dir>/v, in a loop until killed, with
// renames only: x -> v, v -> x, y -> v, v -> y. A file deleted while it was
// at v is made again (1 MiB of its letter). Prints "ready" first.
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
const v = join(dir, 'v');
const make = (n) => {
  writeFileSync(join(dir, `${n}.new`), Buffer.alloc(1 << 20, n));
  renameSync(join(dir, `${n}.new`), join(dir, n));
};
const move = (from, to) => {
  try {
    renameSync(from, to);
  } catch (e) {
    if (e.code !== 'ENOENT') throw e;
  }
};
make('x');
make('y');
process.stdout.write('ready\n');
for (;;) {
  for (const n of ['x', 'y']) {
    move(join(dir, n), v);
    move(v, join(dir, n));
    try {
      renameSync(join(dir, n), join(dir, `${n}.probe`));
      renameSync(join(dir, `${n}.probe`), join(dir, n));
    } catch {
      make(n); // deleted while it was at v
    }
  }
}
