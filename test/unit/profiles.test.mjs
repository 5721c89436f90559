// Built-in profile names and aliases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadProfile, loadProfiles } from '../../dist/config/profiles.js';

const profileNames = () => [...loadProfiles().keys()];
const resolveProfile = (name) => {
  const p = loadProfile(name);
  return { name: p.name, command: p.command[0] };
};
import { LaunchError } from '../../dist/core/errors.js';
import { assertLaunchError } from '../fixtures/unit/helpers.mjs';

test('profile names', () => {
  assert.deepEqual(profileNames().sort(), ['aider', 'claude-code', 'codex', 'cursor', 'opencode']);
});

test('resolves canonical names and aliases', () => {
  assert.deepEqual(resolveProfile('claude-code'), { name: 'claude-code', command: 'claude' });
  assert.deepEqual(resolveProfile('claude'), { name: 'claude-code', command: 'claude' });
  assert.deepEqual(resolveProfile('codex'), { name: 'codex', command: 'codex' });
  assert.deepEqual(resolveProfile('openai-codex'), { name: 'codex', command: 'codex' });
  assert.deepEqual(resolveProfile('cursor'), { name: 'cursor', command: 'cursor-agent' });
  assert.deepEqual(resolveProfile('opencode'), { name: 'opencode', command: 'opencode' });
  assert.deepEqual(resolveProfile('aider'), { name: 'aider', command: 'aider' });
  for (const n of profileNames()) assert.equal(resolveProfile(n).name, n);
});

test('unknown names are refused, listing the profiles and suggesting the nearest', () => {
  const e = assertLaunchError(() => resolveProfile('claud-code'), LaunchError, '--profile claud-code', 'unknown profile', 'did you mean "claude-code"?');
  for (const n of profileNames()) assert.ok(e.message.includes(n), n);
  assert.ok(e.message.includes(`(available: ${profileNames().join(', ')})`), e.message);
  assertLaunchError(() => resolveProfile('codx'), LaunchError, 'did you mean "codex"?');
  assertLaunchError(() => resolveProfile('opencod'), LaunchError, 'did you mean "opencode"?');
  assertLaunchError(() => resolveProfile('openai-codx'), LaunchError, 'did you mean "openai-codex"?');
  const far = assertLaunchError(() => resolveProfile('vim'), LaunchError, '--profile vim', 'available:');
  assert.doesNotMatch(far.message, /did you mean/);
  assert.equal(far.exitCode, 125);
});

test('matching is exact: case, whitespace and prototype names are not profiles', () => {
  for (const n of ['Claude', 'CODEX', ' codex', 'codex ', '', 'constructor', '__proto__', 'toString']) {
    assertLaunchError(() => resolveProfile(n), LaunchError, 'unknown profile');
  }
});
