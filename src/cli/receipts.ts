// `latchgate receipts`: receipt bundles, the evidence of one execution that
// anyone can check offline (docs/EVIDENCE.md, "Receipt bundles").
//   export ID     writes the bundle of a receipt of this state directory's ledger
//   verify FILE   checks a bundle with src/verify/ (the code the page runs)
import { Command } from 'commander';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LaunchError } from '../core/errors.js';
import { verifyBundle, type BundleReport, type CheckStatus } from '../verify/bundle.js';
import { BundleFormatError } from '../verify/bundle-format.js';
import { JsonSyntaxError, parseJson } from '../verify/json.js';
import { mergeTrustedKeys, parseTrustedKeys, type TrustedKeys } from '../verify/trusted-keys.js';
import { BundleExportError, exportReceiptBundle } from '../ledger/receipt-bundle.js';
import { CheckpointRefusedError } from '../ledger/tree-checkpoints.js';
import { KeyStoreError } from '../keys/ed25519.js';
import { displayText } from './safe-text.js';
import { common, print, withGate, type Out } from './gate-commands.js';

/** Where `npm run build` writes the page (scripts/build-verify-page.mjs). */
export const VERIFY_PAGE = fileURLToPath(new URL('../verify.html', import.meta.url));

/** Exit status of `receipts verify` for a bundle that does not verify. */
export const EXIT_NOT_VERIFIED = 2;

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new LaunchError(`cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** A vkey or JSON given on the command line, else the file it names. */
function trustedKeyText(arg: string): { text: string; source: string } {
  if (arg.trimStart().startsWith('{') || /^[^+\s]+\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$/.test(arg.trim())) return { text: arg, source: '--trusted-key' };
  return { text: readText(arg, 'trusted key file'), source: arg };
}

function loadTrusted(args: string[]): TrustedKeys {
  try {
    return mergeTrustedKeys(...args.map((a) => {
      const { text, source } = trustedKeyText(a);
      return parseTrustedKeys(text, source);
    }));
  } catch (e) {
    if (e instanceof BundleFormatError) throw new LaunchError(`--trusted-key ${e.message}. Expected the receipt key history (JWKS, /.well-known/latchgate-receipt-keys.json) or one JWK of it, or checkpoint verifier keys <name>+<hex8>+<base64>, inline or in a file`);
    throw e;
  }
}

function loadRequest(path: string): { value: unknown } {
  try {
    return { value: parseJson(readText(path, 'request file')) };
  } catch (e) {
    if (e instanceof JsonSyntaxError) throw new LaunchError(`--request ${path} is not a JSON document: ${e.message}`);
    throw e;
  }
}

const LABEL: Record<CheckStatus, string> = { ok: 'ok', failed: 'FAILED', not_checked: 'not checked' };

/** One line per check: a detail quotes the bundle, so each goes through displayText (a newline in it cannot start a line of its own). */
export function renderReport(file: string, r: BundleReport): string {
  return [`receipt bundle ${displayText(file)}`, ...r.checks.map((c) => `  ${LABEL[c.status].padEnd(12)} ${c.title}: ${displayText(c.detail)}`), displayText(r.summary)].join('\n');
}

/** Writes a new file, never over an existing one (an earlier bundle is evidence too). */
function writeNew(path: string, text: string): void {
  try {
    writeFileSync(path, text, { flag: 'wx', mode: 0o644 });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new LaunchError(code === 'EEXIST' ? `--out ${path} exists: give another file, or move it away first` : `cannot write --out ${path}: ${code ?? (e as Error).message}`, 1);
  }
}

function exportCommand(): Command {
  return common(new Command('export').summary('write the bundle of one receipt: the receipt, its key, its ledger event, the proof into a signed checkpoint'))
    .description(
      'The bundle is checked before it is written, as an auditor holding this state directory\'s keys would check it. When no signed checkpoint covers the receipt\'s event yet, one is signed and delivered as `latchgate checkpoint` does. ' +
        'An auditor verifies the bundle with `latchgate receipts verify FILE --trusted-key <receipt key history> --trusted-key <checkpoint key>`, or in the page `latchgate receipts verify --print-page-path` names.',
    )
    .argument('<id>', 'the receipt id (receipt_id in the gate\'s answer, or execution.receipt_id in `latchgate audit`)')
    .option('--out <file>', 'write the bundle to this new file (default: standard output)')
    .option('--newer', 'add the latest checkpoint and the consistency proof from the one the receipt\'s proof is in')
    .action(async (id: string, o: Out & { out?: string; newer?: boolean }) => {
      if (o.out !== undefined && existsSync(o.out)) throw new LaunchError(`--out ${o.out} exists: give another file, or move it away first`, 1);
      await withGate(o, async (g) => {
        const { store, publisher } = g.checkpoints;
        const signCheckpoint = () => {
          try {
            return store.signCheckpoint();
          } catch (e) {
            if (!(e instanceof CheckpointRefusedError || e instanceof KeyStoreError || (e as NodeJS.ErrnoException).code === 'EACCES')) throw e;
            throw new BundleExportError(`no signed checkpoint covers this receipt's event, and none could be signed here (${(e as Error).message}). Fix: run \`latchgate checkpoint\` as the gate's operator, then export again`, 'no_checkpoint');
          }
        };
        let exported;
        try {
          exported = exportReceiptBundle(g.ctx.ledger, g.ctx.keys, store, id, { newer: o.newer === true, signCheckpoint });
        } catch (e) {
          if (e instanceof BundleExportError) throw new LaunchError(`receipts export: ${e.message}`, 1);
          throw e;
        }
        if (exported.signed) {
          for (const sink of await publisher.publish()) {
            if (sink.error !== undefined) process.stderr.write(`latchgate: warning: the checkpoint signed for this bundle did not reach sink ${displayText(sink.sink)}: ${displayText(sink.error)} (it is retried at the next checkpoint)\n`);
          }
        }
        const { bundle } = exported;
        const text = `${JSON.stringify(bundle, null, 2)}\n`;
        if (o.out === undefined) {
          process.stdout.write(text);
          return;
        }
        writeNew(o.out, text);
        const facts = {
          file: o.out,
          receipt_id: id,
          leaf_index: bundle.event.leaf_index,
          checkpoint_size: Number(bundle.checkpoint.note.split('\n')[1]),
          ...(bundle.newer_checkpoint ? { newer_checkpoint_size: Number(bundle.newer_checkpoint.note.split('\n')[1]) } : {}),
          checkpoint_signed: exported.signed !== undefined,
        };
        print(o, facts, () =>
          `wrote the bundle of receipt ${displayText(id)} to ${displayText(o.out)}: event leaf ${facts.leaf_index} in the signed checkpoint of size ${facts.checkpoint_size}${exported.signed ? ' (signed now)' : ''}` +
            `${facts.newer_checkpoint_size !== undefined ? `, consistent with the latest of size ${facts.newer_checkpoint_size}` : ''}`,
        );
      });
    });
}

export function receiptsCommand(): Command {
  const c = new Command('receipts').summary('receipt bundles: one execution\'s evidence, checked offline');
  c.addCommand(exportCommand());
  c.addCommand(
    new Command('verify')
      .summary('check a receipt bundle: the receipt, its signature and key, its ledger event, the event in a signed checkpoint')
      .description(
        'Exit 0 when every check passes with trusted keys (or with --trust-bundle-keys, the bundle\'s own), 2 when one fails or a key is not trusted (the first failed check is named). ' +
          `The same checks run in a browser page opened from disk: --print-page-path gives its path.`,
      )
      .argument('[file]', 'the bundle (latchgate receipts export)')
      .option('--trusted-key <key>', 'a key to trust: the receipt key history (JWKS) or a JWK of it, or a checkpoint verifier key; inline or a file; repeatable', (v: string, all: string[]) => [...all, v], [] as string[])
      .option('--trust-bundle-keys', "accept the keys the bundle carries: checks that the bundle holds together, not who signed it")
      .option('--request <file>', 'the request body (JSON) to compare with the receipt\'s request_hash')
      .option('--print-page-path', 'print the path of the verify page (verify.html) and exit')
      .option('--json', 'machine-readable output')
      .action((file: string | undefined, o: Out & { trustedKey: string[]; trustBundleKeys?: boolean; request?: string; printPagePath?: boolean }) => {
        if (o.printPagePath) {
          if (!existsSync(VERIFY_PAGE)) throw new LaunchError(`the verify page is not built (${VERIFY_PAGE}). Fix: npm run build`, 1);
          process.stdout.write(`${VERIFY_PAGE}\n`);
          return;
        }
        if (file === undefined) throw new LaunchError('receipts verify needs the bundle file (or --print-page-path); see `latchgate receipts verify --help`');
        if (o.trustBundleKeys && o.trustedKey.length > 0) throw new LaunchError('--trust-bundle-keys and --trusted-key exclude each other: trust the keys given, or the bundle\'s own');
        const text = readText(file, 'bundle');
        const report = verifyBundle(text, { trusted: loadTrusted(o.trustedKey), request: o.request === undefined ? undefined : loadRequest(o.request) });
        const accepted = report.verdict === 'verified' || (report.verdict === 'unauthenticated' && o.trustBundleKeys === true);
        const out = { ...report, accepted, ...(o.trustBundleKeys ? { trust_bundle_keys: true } : {}) };
        print(o, out, () => renderReport(file, report) + (report.verdict === 'unauthenticated' && !o.trustBundleKeys ? '\nnot accepted: give the trusted keys (--trusted-key), or --trust-bundle-keys to accept the bundle\'s own' : ''));
        process.exitCode = accepted ? 0 : EXIT_NOT_VERIFIED;
      }),
  );
  return c;
}
