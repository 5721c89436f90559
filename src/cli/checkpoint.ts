// `latchgate checkpoint`: sign the ledger's tree head now and deliver it
// (checkpoints.log and the sinks of [ledger.checkpoints]); --print-key: the
// verifier key an auditor checks checkpoints with. Works beside a running
// gate (the same SQLite file; the key store's lock for a new key).
import { Command } from 'commander';
import { LaunchError } from '../core/errors.js';
import { CheckpointRefusedError } from '../ledger/tree-checkpoints.js';
import { common, print, withGate, type Out } from './gate-commands.js';

/** `latchgate checkpoint` exits with this when a sink did not take the checkpoint (it is retried at the next one). */
export const EXIT_SINK_FAILED = 3;
/** ...and with this when the ledger no longer extends its latest checkpoint: nothing was signed. */
export const EXIT_REFUSED = 2;

export function checkpointCommand(): Command {
  return common(new Command('checkpoint').summary('sign a checkpoint of the ledger now and deliver it; --print-key: the key auditors verify checkpoints with'))
    .description(
      'Signs the ledger\'s Merkle tree head (a C2SP signed checkpoint, docs/EVIDENCE.md) unless the latest checkpoint already covers it, stores it, appends it to checkpoints.log and delivers it to the sinks of [ledger.checkpoints]; prints the signed note (keep a copy where the state directory\'s writers cannot reach, and check the ledger against it later with `latchgate verify --checkpoint FILE --trusted-key VKEY`). ' +
        `Exit ${EXIT_REFUSED} when the ledger no longer extends its latest checkpoint (nothing is signed), ${EXIT_SINK_FAILED} when a sink did not take it (it is retried at the next checkpoint).`,
    )
    .option('--print-key', 'print the verifier key of the current checkpoint key (with --json: every key of the history) and sign nothing')
    .action(async (o: Out & { printKey?: boolean }) => {
      await withGate(o, async (g) => {
        const { store, publisher } = g.checkpoints;
        if (o.printKey) {
          const current = store.currentVerifierKey();
          print(o, { origin: store.origin, vkey: current, keys: store.verifierKeys() }, () => current);
          return;
        }
        let cp;
        try {
          cp = store.signCheckpoint();
        } catch (e) {
          if (!(e instanceof CheckpointRefusedError)) throw e;
          g.gate.event({ event_type: 'checkpoint_refused', decision: 'error', details: { reason: e.code, error: e.message } });
          throw new LaunchError(`no checkpoint signed: ${e.message}`, EXIT_REFUSED);
        }
        const sinks = await publisher.publish();
        print(o, { size: cp.size, root: Buffer.from(cp.root).toString('hex'), origin: cp.origin, kid: cp.kid, vkey: cp.vkey, created_at: cp.created_at, note: cp.note, sinks }, () => cp.note.trimEnd());
        if (sinks.some((s) => s.error !== undefined)) process.exitCode = EXIT_SINK_FAILED;
      });
    });
}
