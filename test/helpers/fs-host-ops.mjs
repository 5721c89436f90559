// Run as another uid (test/helpers/other-uid.mjs runAs): an FsHost over the
// root given (every operation, every path) does the legitimate operations and
// tries a symlink out; prints one JSON line of what each call gave.
import { FsHost } from '../../dist/providers/host-fs.js';

const [root, forceWalk] = process.argv.slice(2);
const host = new FsHost({ root, allowed_operations: ['read', 'create', 'overwrite', 'delete', 'list', 'stat'], allowed_paths: ['**'], denied_paths: [], max_file_bytes: 1024 }, { forceWalk: forceWalk === 'true' });
const out = {};
const step = async (name, call) => {
  try {
    const v = await call();
    out[name] = v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : v ?? 'ok';
  } catch (e) {
    out[name] = e.name === 'HostIoError' ? e.code : `unexpected: ${e.message}`;
  }
};
await step('read', () => host.read('src/a.txt'));
await step('create', () => host.write('src/b.txt', Buffer.from('made'), 'create'));
await step('overwrite', () => host.write('src/a.txt', Buffer.from('changed'), 'overwrite'));
await step('list', async () => (await host.list('src')).map((e) => e.name).join(','));
await step('stat', async () => (await host.stat('src/b.txt')).size);
await step('delete', () => host.delete('src/b.txt'));
await step('symlink', () => host.read('out/secret'));
console.log(JSON.stringify(out));
