// The SOPS tree walk (sops.go): which leaves are encrypted (one crypt rule
// per file; `_unencrypted` suffix when none is set), the associated data of
// each (the map keys from the root joined by ":" plus a trailing ":"; list
// items take their list's path), and the MAC: SHA-512 over every leaf's
// plaintext bytes in document order (only the encrypted ones, after a fixed
// prefix, with mac_only_encrypted), as upper-case hex.
import { createHash } from 'node:crypto';
import { SecretsError } from './errors.js';
import { decryptEnc, encryptEnc, GoFloat, GoTime, isMap, looksEncrypted, macBytes, typedValue, type SopsMap, type SopsNode, type SopsScalar } from './sops-value.js';

export type CryptRuleKind = 'unencrypted_suffix' | 'encrypted_suffix' | 'unencrypted_regex' | 'encrypted_regex';
export interface CryptRule { kind: CryptRuleKind; value: string }

export const DEFAULT_RULE: CryptRule = { kind: 'unencrypted_suffix', value: '_unencrypted' };

/** sops.go MACOnlyEncryptedInitialization: starts the hash so the two MAC kinds never collide. */
const MAC_ONLY_ENCRYPTED_INIT = Buffer.from('8a3fd2ad54ce66527b1034f3d147be0b0b975b3bf44f72c6fdadec8176f27d69', 'hex');

/** How a rule decides, given the map keys from the root to the leaf. */
export function ruleTest(rule: CryptRule, file?: string): (path: readonly string[]) => boolean {
  switch (rule.kind) {
    case 'unencrypted_suffix': return (p) => !p.some((k) => k.endsWith(rule.value));
    case 'encrypted_suffix': return (p) => p.some((k) => k.endsWith(rule.value));
    default: {
      let re: RegExp;
      try {
        re = new RegExp(rule.value, 'u');
      } catch (e) {
        throw new SecretsError('bad_metadata', `${file ?? '(secrets file)'}: sops.${rule.kind} ${JSON.stringify(rule.value)} is not a regular expression latchgate can read (${(e as Error).message})`, file === undefined ? {} : { file });
      }
      return rule.kind === 'encrypted_regex' ? (p) => p.some((k) => re.test(k)) : (p) => !p.some((k) => re.test(k));
    }
  }
}

/** The key path as `sops --extract` writes it: ["a"]["b"][0]. */
export const extractPath = (path: readonly (string | number)[]): string =>
  path.map((k) => (typeof k === 'number' ? `[${k}]` : `[${JSON.stringify(k)}]`)).join('');

type Visit = (leaf: SopsScalar, keys: string[], shown: (string | number)[]) => SopsScalar;

/** The tree with every non-null leaf replaced by visit's result (nulls stay: sops neither encrypts nor MACs them). */
function mapLeaves(node: SopsNode, keys: string[], shown: (string | number)[], visit: Visit): SopsNode {
  if (node === null) return null;
  if (isMap(node)) {
    const out: SopsMap = new Map();
    for (const [k, v] of node) out.set(k, mapLeaves(v, [...keys, k], [...shown, k], visit));
    return out;
  }
  if (Array.isArray(node)) return node.map((v, i) => mapLeaves(v, keys, [...shown, i], visit));
  return visit(node, keys, shown);
}

export interface TreeCrypto { rule: CryptRule; macOnlyEncrypted: boolean; file?: string }

function newMac(macOnlyEncrypted: boolean) {
  const h = createHash('sha512');
  if (macOnlyEncrypted) h.update(MAC_ONLY_ENCRYPTED_INIT);
  return h;
}

/**
 * The plaintext tree and the MAC computed over it. A leaf the rule says is
 * encrypted but that holds plaintext is refused (only "" may stay, as sops
 * writes an empty value), so a value pasted into the file is never read.
 */
export function decryptTree(tree: SopsMap, key: Buffer, c: TreeCrypto): { plain: SopsMap; mac: string; unencrypted: string[] } {
  const encrypted = ruleTest(c.rule, c.file);
  const hash = newMac(c.macOnlyEncrypted);
  const unencrypted: string[] = [];
  const plain = mapLeaves(tree, [], [], (leaf, keys, shown) => {
    const keyPath = extractPath(shown);
    const place = { ...(c.file === undefined ? {} : { file: c.file }), keyPath };
    const enc = encrypted(keys);
    let v: SopsScalar = leaf;
    if (!enc) unencrypted.push(keyPath);
    if (enc && leaf !== '') {
      if (typeof leaf !== 'string' || !looksEncrypted(leaf)) {
        const rule = `${c.rule.kind}: ${JSON.stringify(c.rule.value)}`;
        throw new SecretsError('unencrypted_value', `${c.file ?? '(secrets file)'}: ${keyPath} holds a plaintext value where the file's rule (${rule}) says it must be encrypted; someone edited the file without sops: remove the value or set it again with \`latchgate secrets set\` / \`sops set\``, place);
      }
      const d = decryptEnc(leaf, key, `${keys.join(':')}:`, place);
      v = typedValue(d.bytes, d.type, place);
    }
    if (!c.macOnlyEncrypted || enc) hash.update(macBytes(v));
    return v;
  }) as SopsMap;
  return { plain, mac: hash.digest('hex').toUpperCase(), unencrypted };
}

/** The encrypted tree and the MAC of the plaintext, as sops.go Tree.Encrypt. */
export function encryptTree(plainTree: SopsMap, key: Buffer, c: TreeCrypto): { tree: SopsMap; mac: string } {
  const encrypted = ruleTest(c.rule, c.file);
  const hash = newMac(c.macOnlyEncrypted);
  const tree = mapLeaves(plainTree, [], [], (leaf, keys) => {
    const enc = encrypted(keys);
    if (!c.macOnlyEncrypted || enc) hash.update(macBytes(leaf));
    return enc && leaf !== '' ? encryptEnc(leaf, key, `${keys.join(':')}:`) : leaf;
  }) as SopsMap;
  return { tree, mac: hash.digest('hex').toUpperCase() };
}

/** Plain JavaScript values (objects, arrays, strings, numbers; ints past 2^53 stay bigint). */
export function toPlainJs(node: SopsNode): unknown {
  if (node === null || typeof node === 'string' || typeof node === 'boolean') return node;
  if (typeof node === 'bigint') return node >= BigInt(Number.MIN_SAFE_INTEGER) && node <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(node) : node;
  if (isMap(node)) return Object.fromEntries([...node].map(([k, v]) => [k, toPlainJs(v)]));
  if (Array.isArray(node)) return node.map(toPlainJs);
  if (node instanceof GoFloat) return node.value;
  if (node instanceof GoTime) return node.text;
  return Buffer.from(node);
}
