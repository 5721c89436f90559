// Which ledger events are denials that may be counted into summaries
// (src/ledger/coalesce.ts), and what a denial's kind is. Only refusals that
// leave nothing behind qualify:
//   - a box exit's refusal before anything was forwarded (egress,
//     credential_proxy and egress_dns events with decision deny), of kind
//     reason + target (host:port and listener, the credential route, or the
//     name asked of the box's resolver) + status;
//   - the gate's refusals of a caller without a session: no lease and DPoP
//     verified (action_call with no session_id), a request refused before any
//     route ran (request_refused), a lease refused (lease_denied), of kind
//     error code + route or action.
// Everything else is written in full, always: allowed events, errors of
// requests already forwarded, and anything tied to a session, a grant, an
// intent, a receipt or an approval.
import type { AuditEventInput } from '../core/audit-event.js';
import type { DenialKind } from './coalesce.js';

export function denialKind(e: AuditEventInput): DenialKind | null {
  switch (e.event_type) {
    case 'egress':
      return e.decision === 'deny' ? egressKind(e) : null;
    case 'credential_proxy':
      return e.decision === 'deny' ? credentialKind(e) : null;
    case 'egress_dns':
      return e.decision === 'deny' ? dnsKind(e) : null;
    case 'action_call':
    case 'request_refused':
    case 'lease_denied':
      return gateKind(e);
    default:
      return null;
  }
}

const str = (v: unknown): v is string => typeof v === 'string';

function egressKind(e: AuditEventInput): DenialKind | null {
  const d = e.details ?? {};
  if (!str(d.reason)) return null;
  const { host = null, port = null, reason, transport = null, status = null } = d;
  const sample = [d.method, d.target ?? d.detail].filter(str).join(' ');
  return {
    key: `${reason} ${String(host ?? '-')}:${String(port ?? '-')} via ${String(transport)} ${String(status)}`,
    summary: { event_type: e.event_type, decision: 'deny', ...subjectOf(e), details: { host, port, reason, transport, status } },
    ...(sample ? { sample } : {}),
  };
}

function credentialKind(e: AuditEventInput): DenialKind | null {
  const d = e.details ?? {};
  if (!str(d.reason)) return null;
  const { route = null, reason, status = null } = d;
  return {
    key: `${reason} /${String(route ?? '-')} ${String(status)}`,
    summary: { event_type: e.event_type, decision: 'deny', ...subjectOf(e), details: { route, reason, status } },
    ...(str(d.method) && str(d.path) ? { sample: `${d.method} ${d.path}` } : {}),
  };
}

function dnsKind(e: AuditEventInput): DenialKind | null {
  const d = e.details ?? {};
  if (!str(d.reason)) return null;
  const { name = null, reason, rcode = null, transport = null, allowlisted = null } = d;
  return {
    key: `${reason} ${String(name ?? '-')} via ${String(transport)} ${String(rcode)}`,
    summary: { event_type: e.event_type, decision: 'deny', ...subjectOf(e), details: { name, reason, rcode, transport, allowlisted } },
    ...(str(d.qtype) || str(d.detail) ? { sample: [d.qtype, d.detail].filter(str).join(' ') } : {}),
  };
}

function gateKind(e: AuditEventInput): DenialKind | null {
  if (e.decision !== 'deny' && e.decision !== 'error') return null;
  // A session means a verified lease: its refusals are the trail of a real caller, kept in full.
  if (e.subject?.session_id !== undefined || e.approval !== undefined || !str(e.error?.code)) return null;
  const code = e.error.code;
  const summary: AuditEventInput = { event_type: e.event_type, decision: e.decision, ...subjectOf(e), error: { code } };
  let key = code;
  if (e.event_type === 'action_call') {
    const action = e.action?.action_id ?? '';
    summary.action = { action_id: action };
    key = `${code} ${action}`;
  } else if (e.event_type === 'request_refused') {
    const route = str(e.details?.route) ? e.details.route : '';
    summary.details = str(e.details?.peer) ? { route, peer: e.details.peer } : { route };
    key = `${code} ${route}`;
  }
  return { key, summary, ...(str(e.error.message) ? { sample: e.error.message } : {}) };
}

function subjectOf(e: AuditEventInput): Pick<AuditEventInput, 'subject'> {
  return e.subject ? { subject: { ...e.subject } } : {};
}
