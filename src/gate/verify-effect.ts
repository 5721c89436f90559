// Effect verification with honest outcomes: a result is "verified" only when
// host-observed evidence confirms it; the provider's own claims are compared
// against that evidence, never taken on trust.
import type { ActionManifest } from './types.js';
import type { VerificationStatus } from '../ledger/receipt.js';
import type { HostEvidence, ProviderOutput } from './providers.js';

export interface VerificationResult {
  status: VerificationStatus;
  evidence?: unknown;
  reason?: string;
}

function claimedStatus(p: ProviderOutput): number | undefined {
  const o = p.output as { status_code?: unknown; status?: unknown } | undefined;
  const v = o?.status_code ?? o?.status;
  return typeof v === 'number' ? v : undefined;
}

export function verifyEffect(m: ActionManifest, p: ProviderOutput | undefined, evidence: readonly HostEvidence[]): VerificationResult {
  if (!p || !p.ok) return { status: 'provider_failed_before_verification', reason: p?.error ?? 'the provider did not complete' };
  if (m.verifier_kind === 'none') return { status: 'unverifiable_declared' };
  const required = m.verification_config?.required_fields ?? [];
  // Only the output's own fields count (an inherited "toString" is no evidence); an output that is not an object has none.
  const out: Record<string, unknown> = typeof p.output === 'object' && p.output !== null && !Array.isArray(p.output) ? (p.output as Record<string, unknown>) : {};
  const missing = required.filter((f) => !Object.hasOwn(out, f));
  if (missing.length > 0) return { status: 'verification_failed', reason: `the output lacks ${missing.join(', ')}` };
  if (m.verifier_kind === 'http_status') {
    const last = evidence.filter((e) => e.kind === 'http').at(-1);
    if (!last) return { status: 'verification_failed', reason: 'no HTTP call was observed by the host' };
    const expected = m.verification_config?.expected_status;
    const ok = expected ? expected.includes(last.status) : last.status >= 200 && last.status < 300;
    const claimed = claimedStatus(p);
    if (claimed !== undefined && claimed !== last.status) {
      return { status: 'verification_failed', evidence: last, reason: `the provider claimed status ${claimed}; the host observed ${last.status}` };
    }
    return ok ? { status: 'verified', evidence: last } : { status: 'verification_failed', evidence: last, reason: `status ${last.status} is not a success` };
  }
  if (m.verifier_kind === 'fs_hash') {
    // The content the host read or wrote (or, for a delete, what was there) against the hash the provider reports.
    const last = evidence.filter((e) => e.kind === 'fs').at(-1);
    if (!last) return { status: 'verification_failed', reason: 'no file operation was observed by the host' };
    const observed = last.sha256_after ?? last.sha256_before;
    const claimed = typeof out.sha256 === 'string' ? out.sha256 : undefined;
    if (claimed !== undefined && observed !== undefined && claimed !== `sha256:${observed}`) {
      return { status: 'verification_failed', evidence: last, reason: `the provider reported content ${claimed}; the host observed sha256:${observed} at ${last.path}` };
    }
    return { status: 'verified', evidence: last };
  }
  return { status: 'verification_failed', reason: `no host evidence for verifier ${m.verifier_kind}` };
}
