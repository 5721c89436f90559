// An action's manifest as an MCP tool: its name (MCP tool names are
// [A-Za-z0-9_-], at most 64 characters here, as most clients accept), the
// request schema as inputSchema, an object response schema as outputSchema,
// a description the model reads, and the tool annotations the manifest
// implies (readOnlyHint, destructiveHint, openWorldHint; MCP specification,
// "Tool annotations"). Annotations are hints for the client's UI; the gate
// decides every call.
import type { Tool } from '@modelcontextprotocol/sdk/types.js';

const NAME_MAX = 64;

/** A tool name for the action id, unique among `taken` (the names given already). */
export function toolName(actionId: string, taken: ReadonlySet<string>): string {
  const base = (actionId.replace(/[^A-Za-z0-9_-]/g, '_') || 'action').slice(0, NAME_MAX);
  if (!taken.has(base)) return base;
  for (let i = 2; ; i++) {
    const suffix = `_${i}`;
    const name = base.slice(0, NAME_MAX - suffix.length) + suffix;
    if (!taken.has(name)) return name;
  }
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => !!v && typeof v === 'object' && !Array.isArray(v);

/** The sinks that write nothing: `<kind>_read`. Anything else (an unknown sink too) may change something. */
const readsOnly = (sink: string) => /_read$/.test(sink);
const deletes = (sink: string) => /_(delete|overwrite)$/.test(sink);
const reachesOut = (sink: string) => /^(http|net|egress|webhook)_/.test(sink);

/**
 * The tool for a manifest (as GET /v1/actions/:id returns it), or a reason it
 * cannot be one (a request schema whose root is not an object: MCP arguments
 * always are).
 */
export function toolFor(name: string, m: Json): Tool | { skip: string } {
  const io = isObject(m.io) ? m.io : {};
  const req = isObject(io.request_schema) ? io.request_schema : undefined;
  if (req && req.type !== undefined && req.type !== 'object') return { skip: `its request schema's root type is ${JSON.stringify(req.type)}, and MCP tool arguments are an object` };
  const inputSchema = (req ? { ...req, type: 'object' } : { type: 'object' }) as Tool['inputSchema'];
  const res = io.response_schema;
  const outputSchema = isObject(res) && res.type === 'object' ? (res as Tool['outputSchema']) : undefined;
  const id = String(m.action_id);
  return {
    name,
    title: titleOf(id),
    description: describe(m),
    inputSchema,
    ...(outputSchema ? { outputSchema } : {}),
    annotations: annotationsOf(m, id),
    _meta: { 'latchgate/action': { action_id: id, version: m.version, action_digest: m.action_digest } },
  };
}

export function annotationsOf(m: Json, id = String(m.action_id)): NonNullable<Tool['annotations']> {
  const sinks = Array.isArray(m.declared_side_effects) ? m.declared_side_effects.map(String) : [];
  const risk = String(m.risk_level ?? '');
  const fsOps = isObject(m.fs) && Array.isArray(m.fs.allowed_operations) ? m.fs.allowed_operations.map(String) : [];
  const egress = isObject(m.egress) ? String(m.egress.profile ?? 'none') : 'none';
  const readOnly = sinks.every(readsOnly) && !fsOps.some((op) => op !== 'read' && op !== 'list' && op !== 'stat');
  return {
    title: titleOf(id),
    readOnlyHint: readOnly,
    destructiveHint: sinks.some(deletes) || fsOps.some((op) => op === 'delete' || op === 'overwrite') || risk === 'high' || risk === 'critical',
    openWorldHint: sinks.some(reachesOut) || egress !== 'none' || m.template !== undefined,
  };
}

/** "github_create_issue" -> "Github create issue". */
function titleOf(id: string): string {
  const words = id.replace(/[_-]+/g, ' ').trim();
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** What the model reads: the manifest's own description, then what the gate knows about the action. */
function describe(m: Json): string {
  const lines: string[] = [];
  const own = typeof m.description === 'string' ? m.description : isObject(m.io) && isObject(m.io.request_schema) && typeof m.io.request_schema.description === 'string' ? m.io.request_schema.description : undefined;
  if (own) lines.push(own.trim());
  lines.push(`latchgate action ${String(m.action_id)} v${String(m.version)}, run by the gate and recorded with a signed receipt.`);
  lines.push(`Risk: ${String(m.risk_level ?? 'unknown')}.`);
  const sinks = Array.isArray(m.declared_side_effects) ? m.declared_side_effects.map(String) : [];
  lines.push(`Side effects: ${sinks.length ? sinks.join(', ') : 'none declared'}.`);
  const t = isObject(m.template) ? m.template : undefined;
  if (t) lines.push(`Calls: ${String(t.method)} ${String(t.url_template)}.`);
  const e = isObject(m.egress) ? m.egress : undefined;
  if (e && e.profile !== 'none' && Array.isArray(e.allowed_domains) && e.allowed_domains.length) lines.push(`Hosts: ${e.allowed_domains.map(String).join(', ')}.`);
  const f = isObject(m.fs) ? m.fs : undefined;
  if (f && Array.isArray(f.allowed_operations)) lines.push(`Files: ${f.allowed_operations.map(String).join(', ')}${Array.isArray(f.allowed_paths) && f.allowed_paths.length ? ` under ${f.allowed_paths.map(String).join(', ')}` : ''}.`);
  if (m.risk_level === 'high' || m.risk_level === 'critical') lines.push('A call may wait for an operator to approve it.');
  return lines.join('\n');
}
