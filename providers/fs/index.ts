// The built-in fs provider: one file operation under the call's root through
// latchgate:io/fs. The task is {op, request}: op is read, write (request.mode
// create or overwrite, default overwrite), create, overwrite, delete, list or
// stat; request has path and, for writes, content_base64 and optionally
// expected_before_hash. Outputs match definitions/manifests/fs_*.yaml.
import { cabi_realloc } from '../lib/abi';
import { executeTask } from '../lib/task';
import { base64Decode, base64Encode, sha256 } from '../lib/bytes';
import { list, log, read, remove, stat, write } from '../lib/io';
import { JValue, Kind, Obj } from '../lib/json';

export { cabi_realloc };

function fail(msg: string): string {
  return 'E' + msg;
}

function ok(output: Obj, receipt: Obj): string {
  return 'O' + new Obj().raw('output', output.toString()).raw('receipt', receipt.toString()).toString();
}

function doWrite(path: string, req: JValue, create: bool): string {
  const content = req.str('content_base64');
  if (content == null) return fail('invalid_task: request.content_base64 must be a string');
  const data = base64Decode(content);
  if (data == null) return fail('invalid_task: request.content_base64 is not valid base64');
  const expected = req.str('expected_before_hash');
  if (expected != null) {
    const before = read(path);
    if (before.error != null) return fail('precondition_failed: expected_before_hash is set but the file cannot be read (' + (before.error as string) + ')');
    const actual = sha256(before.data);
    if (actual != expected) return fail('precondition_failed: the file has hash ' + actual + ', not expected_before_hash ' + expected);
  }
  const r = write(path, data, create);
  if (r.error != null) return fail((r.error as string));
  const hash = sha256(data);
  return ok(
    new Obj().str('path', path).str('sha256', hash).num('size', data.length).bool('created', create),
    new Obj().str('claim', 'fs').str('op', create ? 'create' : 'overwrite').str('path', path).str('sha256', hash).num('bytes', data.length),
  );
}

function run(task: JValue): string {
  const op = task.str('op');
  const req = task.get('request');
  if (op == null || req == null || req.kind != Kind.Obj) return fail('invalid_task: the task must be {"op": ..., "request": {"path": ...}}');
  const path = req.str('path');
  if (path == null) return fail('invalid_task: request.path must be a string');
  log(1, 'fs', ['op', 'path'], [op, path]);
  if (op == 'read') {
    const r = read(path);
    if (r.error != null) return fail((r.error as string));
    const hash = sha256(r.data);
    return ok(
      new Obj().str('path', path).str('content_base64', base64Encode(r.data)).str('sha256', hash).num('size', r.data.length),
      new Obj().str('claim', 'fs').str('op', 'read').str('path', path).str('sha256', hash).num('bytes', r.data.length),
    );
  }
  if (op == 'create' || op == 'overwrite' || op == 'write') {
    let mode = op;
    if (op == 'write') {
      const m = req.str('mode');
      mode = m == null ? 'overwrite' : m;
      if (mode != 'create' && mode != 'overwrite') return fail('invalid_task: request.mode must be create or overwrite');
    }
    return doWrite(path, req, mode == 'create');
  }
  if (op == 'delete') {
    const r = remove(path);
    if (r.error != null) return fail((r.error as string));
    return ok(new Obj().str('path', path).bool('deleted', true), new Obj().str('claim', 'fs').str('op', 'delete').str('path', path));
  }
  if (op == 'list') {
    const r = list(path);
    if (r.error != null) return fail((r.error as string));
    const items: string[] = [];
    for (let i = 0; i < r.entries.length; i++) {
      const e = r.entries[i];
      items.push(new Obj().str('name', e.name).str('kind', e.kind).num('size', <f64>e.size).toString());
    }
    return ok(
      new Obj().str('path', path).raw('entries', '[' + items.join(',') + ']'),
      new Obj().str('claim', 'fs').str('op', 'list').str('path', path).num('entries', r.entries.length),
    );
  }
  if (op == 'stat') {
    const r = stat(path);
    if (r.error != null) return fail((r.error as string));
    return ok(
      new Obj().str('path', path).str('kind', r.kind).num('size', <f64>r.size).num('mtime_ms', <f64>r.mtimeMs),
      new Obj().str('claim', 'fs').str('op', 'stat').str('path', path),
    );
  }
  return fail('invalid_task: op must be read, write, create, overwrite, delete, list or stat, got ' + op);
}

export function execute(ptr: usize, len: usize): usize {
  return executeTask(ptr, len, run);
}
