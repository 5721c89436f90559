// Why a run failed, as its receipt says: the classes the provider runtime
// gives a call (src/providers/runtime.ts) and those only the gate gives.
// One list, so that a receipt can carry every class a run can end with.

/** The provider runtime's classes of a failed call. */
export type ProviderFailureClass =
  | 'provider_untrusted'
  | 'provider_import_denied'
  | 'provider_busy'
  | 'request_too_large'
  | 'response_too_large'
  | 'invalid_output'
  | 'fuel_exhausted'
  | 'memory_exhausted'
  | 'timeout'
  | 'aborted'
  | 'trap'
  | 'provider_error';

/** Every class a receipt's failure_class may hold. */
export type ReceiptFailureClass = ProviderFailureClass | 'policy_violation' | 'verification_failed' | 'cancelled' | 'internal_error';
