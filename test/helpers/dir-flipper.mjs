// Flips <root>/<name> between a real directory and a symlink to <target>, in
// a loop until killed, with atomic renames only:
//   name -> name.real, link -> name, name -> link, name.real -> name
// (the link is made once as <root>/<name>.link). Prints "ready" first.
import { renameSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';

const [root, name, target] = process.argv.slice(2);
const dir = join(root, name);
const real = `${dir}.real`;
const link = `${dir}.link`;
symlinkSync(target, link);
process.stdout.write('ready\n');
for (;;) {
  renameSync(dir, real);
  renameSync(link, dir);
  renameSync(dir, link);
  renameSync(real, dir);
}
