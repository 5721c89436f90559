// What a tools/call answers, from what the SDK gave: a run's output with its
// receipt, a pending approval (the approval id and the command an operator
// runs), or a gate error as a tool error the model can read (MCP
// specification, "Error handling": errors of the tool are results with
// isError, not protocol errors).
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { ExecuteResult, LatchGateApprovalRequired, LatchGateError } from '../sdk/index.js';

const isObject = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** The command an operator runs to approve a held call. */
export const approveCommand = (approvalId: string) => `latchgate approvals approve ${approvalId}`;

export function successResult(r: ExecuteResult, tool: Tool | undefined, approvalId?: string): CallToolResult {
  const receipt = {
    receipt_id: r.receiptId,
    trace_id: r.traceId,
    verification: r.verification.outcome,
    fully_successful: r.verification.isFullySuccessful,
    decision: r.decision,
    ...(r.requestHash ? { request_hash: r.requestHash } : {}),
    ...(approvalId ? { approval_id: approvalId } : {}),
  };
  return {
    content: [
      { type: 'text', text: JSON.stringify(r.output ?? null, null, 2) },
      { type: 'text', text: `receipt ${r.receiptId}; verification ${r.verification.outcome || 'unknown'}; trace ${r.traceId}${approvalId ? `; approved as ${approvalId}` : ''}` },
    ],
    ...(tool?.outputSchema && isObject(r.output) ? { structuredContent: r.output } : {}),
    _meta: { 'latchgate/receipt': receipt },
  };
}

/**
 * A call an operator must approve first. Not an error of the tool, except
 * where the tool declares an outputSchema: a result without structuredContent
 * must then be an error (MCP specification, "Structured content"), and
 * clients refuse it otherwise.
 */
export function pendingResult(e: LatchGateApprovalRequired, tool: Tool | undefined, waitedSeconds: number): CallToolResult {
  const command = approveCommand(e.approvalId);
  const text = [
    `approval_required: an operator must approve this call before the gate runs it.`,
    `Approval id: ${e.approvalId}`,
    `An operator approves it with: ${command}`,
    waitedSeconds > 0 ? `Waited ${waitedSeconds} s; it is still pending.` : undefined,
    `The gate holds this exact request and runs it itself once approved. Call the tool again with the same arguments after the approval to get its result.`,
  ].filter((l) => l !== undefined).join('\n');
  return {
    content: [{ type: 'text', text }],
    ...(tool?.outputSchema ? { isError: true } : {}),
    _meta: { 'latchgate/approval': { status: 'pending', approval_id: e.approvalId, request_hash: e.requestHash, ...(e.expiresAt ? { expires_at: e.expiresAt } : {}), command } },
  };
}

/** What to do when the gate cannot be reached from this server. */
const UNREACHABLE_FIX = 'Fix: start the gate (`latchgate up`), or point the MCP server at it: `latchgate mcp serve --socket PATH` or `--url unix:///PATH`, or LATCHGATE_URL.';

export function errorResult(e: LatchGateError): CallToolResult {
  const receiptId = typeof e.body?.receipt_id === 'string' ? e.body.receipt_id : undefined;
  const lines = [e.message.startsWith(`${e.code}:`) ? e.message : `${e.code}: ${e.message}`];
  if (e.code === 'gate_unreachable') lines.push(UNREACHABLE_FIX);
  if (e.retryAfterSeconds !== undefined) lines.push(`Retry after ${e.retryAfterSeconds} s.`);
  if (receiptId) lines.push(`receipt ${receiptId}`);
  if (e.traceId) lines.push(`trace ${e.traceId}`);
  return {
    content: [{ type: 'text', text: lines.join('\n') }],
    isError: true,
    _meta: {
      'latchgate/error': {
        code: e.code,
        status: e.status,
        ...(e.traceId ? { trace_id: e.traceId } : {}),
        ...(receiptId ? { receipt_id: receiptId } : {}),
        ...(e.retryAfterSeconds !== undefined ? { retry_after_seconds: e.retryAfterSeconds } : {}),
      },
    },
  };
}
