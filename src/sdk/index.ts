// The TypeScript SDK: `import { LatchGateClient } from 'latchgate'` (or
// 'latchgate/sdk'). docs/SDK.md describes it.
export { LatchGateClient, type ActionSummary, type ApprovalStatus, type ExecuteOptions, type ExecuteResult, type LatchGateClientOptions } from './client.js';
export {
  LatchGateApprovalRequired,
  LatchGateAuthError,
  LatchGateBudgetExceeded,
  LatchGateConflict,
  LatchGateConnectionError,
  LatchGateDenied,
  LatchGateError,
  LatchGateExecutionFailed,
  LatchGateInvalidRequest,
  LatchGateNotFound,
  LatchGateUnavailable,
  type GateErrorBody,
} from './errors.js';
export { verifyReceiptWith, type ReceiptKeySet, type ReceiptVerification } from './receipts.js';
export type { FetchLike } from './transport.js';
