// Whether the build loaded this very Cedar policy set with this very Cedar:
// scripts/build-validators.mjs loads policies/latchgate.cedar with its schema
// as a gate does (parsed, validated in strict mode, pre-parsed; the build
// fails when it does not load) and records, in
// dist/generated/cedar-checked.json, the digest of both texts and of the
// Cedar package's files that decide what code the engine runs (cedarFiles).
// The same texts under the same Cedar load again, so a box's
// gate can leave Cedar (about 0.2 s of CPU to load) to its first decision
// without a broken set or package going unsaid until then: most boxes never
// decide. The texts are returned as they were read, and the engine is loaded
// from them, not from the files again: what was checked is what decides; the
// Cedar files are checked again right before they are loaded, so Cedar
// changed after open is refused, not run. No WebAssembly is compiled here.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findPackage } from '../core/find-package.js';
import { sha256Hex } from '../crypto/jcs.js';
import { DEFAULT_POLICY_DIR, policyFile } from './engine.js';

export const CEDAR_CHECKED_FILE = new URL('../generated/cedar-checked.json', import.meta.url);

export interface PolicySet {
  policyText: string;
  schemaText: string;
}

/**
 * The files that decide what Cedar code the engine runs: the package's
 * package.json (its exports map), the module src/policy/cedar.ts imports as
 * `import` resolves it, the package.json beside that module (its module
 * type), and the WebAssembly the module reads from its own directory.
 */
function cedarFiles(): string[] {
  const glue = fileURLToPath(import.meta.resolve('@cedar-policy/cedar-wasm/nodejs'));
  const root = findPackage(dirname(fileURLToPath(import.meta.url)), '@cedar-policy/cedar-wasm');
  if (root === undefined) throw new Error('@cedar-policy/cedar-wasm is not installed');
  return [join(root, 'package.json'), join(dirname(glue), 'package.json'), glue, join(dirname(glue), 'cedar_wasm_bg.wasm')];
}

/** The digest of the installed Cedar: those files, each by SHA-256. */
export function cedarPackageDigest(): string {
  return sha256Hex(cedarFiles().map((f) => sha256Hex(readFileSync(f))).join('\n'));
}

/** The digest a policy set is recorded by: the Cedar that loads it and both texts. */
export const cedarSetDigest = (set: PolicySet, cedarDigest: string): string => sha256Hex(`${cedarDigest}\u0000${set.policyText}\u0000${set.schemaText}`);

/** The policy set in `dir` (latchgate.cedar, latchgate.cedarschema), as CedarEngine.load reads it. */
export function readPolicySet(dir: string = DEFAULT_POLICY_DIR): PolicySet {
  return { policyText: readFileSync(policyFile('latchgate.cedar', dir), 'utf8'), schemaText: readFileSync(policyFile('latchgate.cedarschema', dir), 'utf8') };
}

/** Whether the build loaded exactly this policy set under the Cedar installed now (false when anything cannot be read). */
export function loadedAtBuild(set: PolicySet): boolean {
  try {
    const { digest } = JSON.parse(readFileSync(CEDAR_CHECKED_FILE, 'utf8')) as { digest?: unknown };
    return digest === cedarSetDigest(set, cedarPackageDigest());
  } catch {
    return false;
  }
}

/**
 * The policy set now in `dir`, as read, when the build loaded exactly it
 * under the Cedar now installed; undefined when anything differs or cannot
 * be read (the gate then loads at start, which says what is wrong).
 */
export function cedarCheckedAtBuild(dir: string = DEFAULT_POLICY_DIR): PolicySet | undefined {
  let set: PolicySet;
  try {
    set = readPolicySet(dir);
  } catch {
    return undefined;
  }
  return loadedAtBuild(set) ? set : undefined;
}
