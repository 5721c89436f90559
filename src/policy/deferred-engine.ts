// A policy engine loaded at its first decision. Commands that open the gate
// but never decide (`latchgate audit`, `tokens`, `keys`...) then never load
// Cedar, whose WebAssembly costs about 0.2 s of CPU to compile and prepare.
// Gates that serve load it at start (ready()), so a broken engine is said
// before they answer anyone; a box's gate on the policy set and Cedar the
// build loaded (cedar-checked.ts) leaves it to its first decision. A load
// that fails is a deny (policy_engine_unavailable) for that decision, the
// gate's readiness says why (loadFailure), and the next decision tries
// again; an engine module that failed to import stays failed in this process
// (Node keeps the failed import), so its gate denies until restarted.
import { ENGINE_FAILURE, failClosed, type PolicyData, type PolicyEngine, type PolicyEngineKind } from './engine.js';
import type { PolicyDecision, PolicyInput } from './types.js';

/** What the gate asks of its policy engine; loadFailure: why its engine did not load the last time it tried (readiness says so). */
export type PolicyDecider = Pick<PolicyEngine, 'kind' | 'decide'> & { readonly loadFailure?: string | undefined };

export class DeferredPolicyEngine implements PolicyDecider {
  private loading: Promise<PolicyEngine> | undefined;
  /** Why the last load failed; cleared by one that succeeds. */
  loadFailure: string | undefined;

  constructor(
    readonly kind: PolicyEngineKind,
    private readonly load: () => Promise<PolicyEngine>,
  ) {}

  /** The engine, loaded on the first call; rejects with the load's error (and the next call loads again). */
  ready(): Promise<PolicyEngine> {
    if (!this.loading) {
      const p = this.load();
      this.loading = p;
      p.then(
        () => (this.loadFailure = undefined),
        (e: unknown) => {
          this.loadFailure = (e as Error | null)?.message ?? String(e);
          if (this.loading === p) this.loading = undefined;
        },
      );
    }
    return this.loading;
  }

  async decide(input: PolicyInput, data: PolicyData): Promise<PolicyDecision> {
    let engine: PolicyEngine;
    try {
      engine = await this.ready();
    } catch (e) {
      process.stderr.write(`latchgate: the ${this.kind} policy engine did not load (${(e as Error).message}): this decision is a deny\n`);
      return failClosed(ENGINE_FAILURE.unavailable, `${this.kind}.unavailable`);
    }
    return engine.decide(input, data);
  }
}
