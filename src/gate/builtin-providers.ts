// The one provider written in TypeScript: `builtin:noop` does nothing and
// says so (verifier "none" actions; benchmarks). builtin:http_api and
// builtin:fs are WebAssembly components (src/gate/wasm-providers.ts).
import type { Provider } from './providers.js';

export const noopProvider: Provider = {
  async execute(task) {
    return { ok: true, output: { ok: true, action_id: task.action_id }, provider_receipt: { noop: true } };
  },
};
