// A manifest as an MCP tool (src/mcp/tools.ts): names kept within MCP's
// characters and unique, schemas passed on or refused, annotations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { annotationsOf, toolFor, toolName } from '../../dist/mcp/tools.js';

test('toolName: an MCP-safe id is kept; other characters become _, clashes get a suffix, length stays within 64', () => {
  assert.equal(toolName('github_create_issue', new Set()), 'github_create_issue');
  assert.equal(toolName('a.b/c d', new Set()), 'a_b_c_d');
  assert.equal(toolName('a.b', new Set(['a_b'])), 'a_b_2');
  assert.equal(toolName('a.b', new Set(['a_b', 'a_b_2'])), 'a_b_3');
  const long = 'x'.repeat(80);
  assert.equal(toolName(long, new Set()).length, 64);
  const second = toolName(long, new Set([toolName(long, new Set())]));
  assert.equal(second.length, 64);
  assert.match(second, /_2$/);
  for (const n of ['a.b', long, 'ünïcode', '']) assert.match(toolName(n, new Set()), /^[A-Za-z0-9_-]{1,64}$/);
});

test('toolFor: no request schema is an empty object schema; a non-object root is not offered; an object response schema is the outputSchema', () => {
  const base = { action_id: 'a', version: '1.0.0', risk_level: 'low', declared_side_effects: [] };
  assert.deepEqual(toolFor('a', { ...base, io: {} }).inputSchema, { type: 'object' });
  assert.match(toolFor('a', { ...base, io: { request_schema: { type: 'array' } } }).skip, /root type is "array"/);
  const typed = toolFor('a', { ...base, io: { request_schema: { type: 'object' }, response_schema: { type: 'object', properties: { x: { type: 'string' } } } } });
  assert.deepEqual(typed.outputSchema, { type: 'object', properties: { x: { type: 'string' } } });
  assert.equal(toolFor('a', { ...base, io: { request_schema: { type: 'object' }, response_schema: { type: 'string' } } }).outputSchema, undefined);
});

test('annotations: an unknown sink is not read-only; deletes, overwrites and high risk are destructive; egress is open-world', () => {
  const a = (m) => annotationsOf({ action_id: 'x', risk_level: 'low', declared_side_effects: [], ...m });
  assert.equal(a({ declared_side_effects: ['db_mutate'] }).readOnlyHint, false);
  assert.equal(a({ declared_side_effects: ['db_read'] }).readOnlyHint, true);
  assert.equal(a({ declared_side_effects: ['db_delete'] }).destructiveHint, true);
  assert.equal(a({ declared_side_effects: ['fs_write'], fs: { allowed_operations: ['create'] } }).destructiveHint, false);
  assert.equal(a({ declared_side_effects: ['fs_write'], fs: { allowed_operations: ['create', 'overwrite'] } }).destructiveHint, true);
  assert.equal(a({ risk_level: 'critical' }).destructiveHint, true);
  assert.equal(a({ egress: { profile: 'proxy_allowlist' } }).openWorldHint, true);
  assert.equal(a({ declared_side_effects: ['fs_read'], egress: { profile: 'none' } }).openWorldHint, false);
});
