// Whether the build loaded this very Cedar policy set: scripts/build-validators.mjs
// loads policies/latchgate.cedar with its schema as a gate does (parsed,
// validated in strict mode, pre-parsed; the build fails when it does not
// load) and records the digest of both texts with Cedar's version in
// dist/generated/cedar-checked.json. The same texts under the same Cedar load
// again, so a box's gate can leave Cedar (about 0.2 s of CPU to load) to its
// first decision without a broken set going unsaid until then: most boxes
// never decide. No WebAssembly is loaded here.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { sha256Hex } from '../crypto/jcs.js';
import { DEFAULT_POLICY_DIR, policyFile } from './engine.js';

export const CEDAR_CHECKED_FILE = new URL('../generated/cedar-checked.json', import.meta.url);

/** The version of the Cedar package the engine loads, from its package.json (not its WebAssembly). */
export function cedarPackageVersion(): string {
  const entry = createRequire(import.meta.url).resolve('@cedar-policy/cedar-wasm/nodejs');
  const { version } = JSON.parse(readFileSync(join(dirname(entry), 'package.json'), 'utf8')) as { version?: unknown };
  if (typeof version !== 'string') throw new Error(`${dirname(entry)}/package.json names no version`);
  return version;
}

/** The digest a policy set is recorded by: Cedar's version and both texts. */
export const cedarSetDigest = (policyText: string, schemaText: string, cedarVersion: string): string => sha256Hex(`${cedarVersion}\u0000${policyText}\u0000${schemaText}`);

/** The policy set in `dir` (latchgate.cedar, latchgate.cedarschema), as CedarEngine.load reads it. */
export function readPolicySet(dir: string = DEFAULT_POLICY_DIR): { policyText: string; schemaText: string } {
  return { policyText: readFileSync(policyFile('latchgate.cedar', dir), 'utf8'), schemaText: readFileSync(policyFile('latchgate.cedarschema', dir), 'utf8') };
}

/** True when the build loaded the policy set now in `dir` under the Cedar now installed; false when anything differs or cannot be read. */
export function cedarCheckedAtBuild(dir: string = DEFAULT_POLICY_DIR): boolean {
  try {
    const { policyText, schemaText } = readPolicySet(dir);
    const { digest } = JSON.parse(readFileSync(CEDAR_CHECKED_FILE, 'utf8')) as { digest?: unknown };
    return digest === cedarSetDigest(policyText, schemaText, cedarPackageVersion());
  } catch {
    return false; // loaded at start, which says what is wrong
  }
}
