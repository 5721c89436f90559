// `latchgate actions ID` for a person: what an action runs (its provider and
// the component digest it is trusted by), what it may reach (imports, egress,
// file globs), its limits and the names of its secrets, never their values.
// Everything comes from the manifest, so it is escaped like any text an
// operator reads (src/cli/safe-text.ts).
import { displayText } from './safe-text.js';

type View = {
  action_id: string;
  version: string;
  risk_level: string;
  action_digest: string;
  provider: { module: string; component_digest?: string; trusted: boolean; refused?: string; imports: string[] };
  resource_limits: { fuel: number; memory_mb: number; timeout_seconds: number; max_io_calls: number; max_host_response_bytes: number };
  io: { max_request_bytes: number; max_response_bytes: number };
  egress: { profile: string; allowed_domains: string[]; allowed_methods: string[] };
  secrets: { name: string; required: boolean }[];
  fs?: { allowed_operations: string[]; allowed_paths: string[]; denied_paths: string[]; max_file_bytes: number };
  declared_side_effects: string[];
  versions?: unknown[];
};

const list = (xs: readonly string[]) => (xs.length ? xs.join(', ') : 'none');

export function actionLines(a: View): string[] {
  const p = a.provider;
  const trust = p.refused !== undefined ? `REFUSED: ${p.refused}` : p.trusted ? (p.component_digest ? `component ${p.component_digest}` : 'built into the gate') : 'no trusted provider is installed';
  const l = a.resource_limits;
  const rows: [string, string][] = [
    ['action', `${a.action_id} ${a.version}, ${a.risk_level} risk (digest ${a.action_digest})`],
    ['provider', `${p.module}: ${trust}`],
    ['imports', list(p.imports)],
    ['limits', `fuel ${l.fuel}, memory ${l.memory_mb} MB, ${l.timeout_seconds} s, ${l.max_io_calls} I/O calls, host answers up to ${l.max_host_response_bytes} bytes, request up to ${a.io.max_request_bytes} bytes, output up to ${a.io.max_response_bytes} bytes`],
    ['egress', a.egress.profile === 'none' ? 'none' : `${list(a.egress.allowed_domains)} (${list(a.egress.allowed_methods)})`],
    ['secrets', a.secrets.length ? a.secrets.map((s) => `${s.name}${s.required ? ' (required)' : ''}`).join(', ') : 'none'],
  ];
  if (a.fs) {
    rows.push(['files', `${list(a.fs.allowed_operations)} up to ${a.fs.max_file_bytes} bytes; allowed ${list(a.fs.allowed_paths)}; denied ${list(a.fs.denied_paths)}`]);
  }
  rows.push(['effects', list(a.declared_side_effects)]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${displayText(v)}`);
}
