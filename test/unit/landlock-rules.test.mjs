// landlockPlan: the handled rights per ABI and the rules mirroring the mounts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FS, NET, SCOPE, handledFs, landlockPlan } from '../../dist/sandbox/landlock-rules.js';

const CLASSES = ['list', 'read', 'read-exec', 'rw', 'rw-noexec', 'proc', 'device', 'tty'];
const FILE_RIGHTS = FS.EXECUTE | FS.WRITE_FILE | FS.READ_FILE | FS.TRUNCATE | FS.IOCTL_DEV;

test('the access bits are the kernel uapi values', () => {
  assert.deepEqual(Object.values(FS), Array.from({ length: 16 }, (_, i) => 1 << i));
  assert.equal(FS.REFER, 0x2000);
  assert.equal(FS.TRUNCATE, 0x4000);
  assert.equal(FS.IOCTL_DEV, 0x8000);
  assert.deepEqual(NET, { BIND_TCP: 1, CONNECT_TCP: 2 });
  assert.deepEqual(SCOPE, { ABSTRACT_UNIX_SOCKET: 1, SIGNAL: 2 });
});

test('handledFs per ABI', () => {
  const abi1 = 0x1fff; // EXECUTE .. MAKE_SYM: 13 bits
  assert.equal(handledFs(1), abi1);
  assert.equal(handledFs(2), abi1 | FS.REFER);
  assert.equal(handledFs(3), abi1 | FS.REFER | FS.TRUNCATE);
  assert.equal(handledFs(4), handledFs(3));
  assert.equal(handledFs(5), abi1 | FS.REFER | FS.TRUNCATE | FS.IOCTL_DEV);
  assert.equal(handledFs(6), handledFs(5));
  assert.equal(handledFs(7), 0xffff);
  const popcount = (n) => n.toString(2).replace(/0/g, '').length;
  assert.deepEqual([1, 2, 3, 4, 5].map((a) => popcount(handledFs(a))), [13, 14, 15, 15, 16]);
});

const RULES = CLASSES.flatMap((c) => [
  { path: `/dir-${c}`, access: c, isFile: false },
  { path: `/file-${c}`, access: c, isFile: true },
]);

test('no rule grants a right the ABI does not handle, and file rules carry file rights only', () => {
  for (let abi = 1; abi <= 8; abi++) {
    const plan = landlockPlan(abi, RULES, false, []);
    assert.equal(plan.abi, abi);
    assert.equal(plan.handledFs, handledFs(abi));
    assert.equal(plan.paths.length, RULES.length);
    for (const [i, p] of plan.paths.entries()) {
      assert.equal(p.path, RULES[i].path);
      assert.equal(p.class, RULES[i].access);
      assert.equal(p.access & ~plan.handledFs, 0, `ABI ${abi} ${p.path}: unhandled bits`);
      if (RULES[i].isFile) assert.equal(p.access & ~FILE_RIGHTS, 0, `ABI ${abi} ${p.path}: directory rights on a file`);
    }
  }
});

test('the access classes grant what they say', () => {
  const at = (abi, path) => landlockPlan(abi, RULES, false, []).paths.find((p) => p.path === path).access;
  assert.equal(at(7, '/dir-list'), FS.READ_DIR);
  assert.equal(at(7, '/dir-read'), FS.READ_FILE | FS.READ_DIR);
  assert.equal(at(7, '/dir-read-exec'), FS.READ_FILE | FS.READ_DIR | FS.EXECUTE);
  const rw = at(7, '/dir-rw');
  for (const b of ['READ_FILE', 'READ_DIR', 'EXECUTE', 'WRITE_FILE', 'REMOVE_DIR', 'REMOVE_FILE', 'MAKE_DIR', 'MAKE_REG', 'MAKE_SOCK', 'MAKE_FIFO', 'MAKE_SYM', 'REFER', 'TRUNCATE']) {
    assert.ok(rw & FS[b], `rw lacks ${b}`);
  }
  for (const b of ['MAKE_CHAR', 'MAKE_BLOCK', 'IOCTL_DEV']) assert.equal(rw & FS[b], 0, `rw grants ${b}`);
  assert.equal(at(7, '/dir-rw-noexec'), rw & ~FS.EXECUTE);
  assert.equal(at(7, '/dir-proc'), FS.READ_FILE | FS.READ_DIR | FS.WRITE_FILE);
  assert.equal(at(7, '/dir-device'), FS.READ_FILE | FS.WRITE_FILE | FS.IOCTL_DEV);
  assert.equal(at(7, '/dir-tty'), FS.READ_FILE | FS.READ_DIR | FS.WRITE_FILE | FS.IOCTL_DEV);
  // No class ever grants device nodes.
  for (const c of CLASSES) assert.equal(at(7, `/dir-${c}`) & (FS.MAKE_CHAR | FS.MAKE_BLOCK), 0, c);
  // File rules drop directory rights.
  assert.equal(at(7, '/file-read'), FS.READ_FILE);
  assert.equal(at(7, '/file-rw'), FS.READ_FILE | FS.EXECUTE | FS.WRITE_FILE | FS.TRUNCATE);
  assert.equal(at(7, '/file-device'), FS.READ_FILE | FS.WRITE_FILE | FS.IOCTL_DEV);
  // Older ABIs: the newer bits disappear.
  assert.equal(at(1, '/dir-rw') & (FS.REFER | FS.TRUNCATE), 0);
  assert.equal(at(2, '/dir-rw') & FS.REFER, FS.REFER);
  assert.equal(at(2, '/dir-rw') & FS.TRUNCATE, 0);
  assert.equal(at(4, '/file-device'), FS.READ_FILE | FS.WRITE_FILE);
  assert.equal(at(5, '/file-device'), FS.READ_FILE | FS.WRITE_FILE | FS.IOCTL_DEV);
});

test('scoping from ABI 6', () => {
  for (let abi = 1; abi <= 5; abi++) assert.equal(landlockPlan(abi, [], false, []).scoped, 0, `ABI ${abi}`);
  for (const abi of [6, 7]) assert.equal(landlockPlan(abi, [], false, []).scoped, SCOPE.ABSTRACT_UNIX_SOCKET | SCOPE.SIGNAL);
});

test('network rules only with strictNet and ABI >= 4', () => {
  for (let abi = 1; abi <= 7; abi++) {
    const loose = landlockPlan(abi, [], false, [8080, 9000]);
    assert.equal(loose.handledNet, 0, `ABI ${abi} without strictNet`);
    assert.deepEqual(loose.ports, []);
    const strict = landlockPlan(abi, [], true, [8080, 9000]);
    if (abi < 4) {
      assert.equal(strict.handledNet, 0, `ABI ${abi}`);
      assert.deepEqual(strict.ports, []);
    } else {
      assert.equal(strict.handledNet, NET.BIND_TCP | NET.CONNECT_TCP);
      assert.deepEqual(strict.ports, [{ port: 8080, access: NET.CONNECT_TCP }, { port: 9000, access: NET.CONNECT_TCP }]);
    }
  }
  assert.deepEqual(landlockPlan(4, [], true, []).ports, [], 'strict with no ports: every TCP bind/connect denied');
  assert.equal(landlockPlan(4, [], true, []).handledNet, 3);
});

test('ABI 0 (or an errno) gives an empty plan', () => {
  const empty = { abi: 0, handledFs: 0, handledNet: 0, scoped: 0, paths: [], ports: [] };
  assert.deepEqual(landlockPlan(0, RULES, true, [80]), empty);
  assert.deepEqual(landlockPlan(-38, RULES, true, [80]), empty);
  assert.deepEqual(landlockPlan(-95, RULES, false, []), empty);
});
