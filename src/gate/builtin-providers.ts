// Providers compiled into latchgate. `builtin:noop` does nothing and says so
// (verifier "none" actions; benchmarks). The HTTP and filesystem providers
// arrive with the providers issue.
import type { Provider } from './providers.js';

export const noopProvider: Provider = {
  async execute(task) {
    return { ok: true, output: { ok: true, action_id: task.action_id }, provider_receipt: { noop: true } };
  },
};
