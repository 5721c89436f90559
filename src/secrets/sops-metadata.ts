// The `sops` map of a file: its age recipients, lastmodified, MAC and crypt
// rule (stores/stores.go metadata). Read strictly: what latchgate cannot
// honour (Shamir key groups, comment rules) is refused by name rather than
// half-read. Also written, in the layout sops 3.9 writes.
import { SecretsError } from './errors.js';
import { DEFAULT_RULE, type CryptRule, type CryptRuleKind } from './sops-tree.js';
import { isMap, type SopsMap, type SopsNode } from './sops-value.js';

export interface AgeEntry { recipient: string; enc: string }

export interface SopsMetadata {
  age: AgeEntry[];
  lastmodified: string;
  mac: string;
  rule: CryptRule;
  macOnlyEncrypted: boolean;
  version: string;
  /** Key services besides age that hold the data key (pgp, kms, ...), by name: kept as they are when writing. */
  others: SopsMap;
}

export const SOPS_FORMAT_VERSION = '3.9.0';
const RULE_KINDS: CryptRuleKind[] = ['unencrypted_suffix', 'encrypted_suffix', 'unencrypted_regex', 'encrypted_regex'];
const OTHER_SERVICES = ['kms', 'gcp_kms', 'hckms', 'azure_kv', 'hc_vault', 'pgp'];

/**
 * Most sops.age entries a file may have (one per recipient). Each is tried
 * with every identity until one opens, so their number bounds a crafted
 * file's cost.
 */
export const MAX_AGE_ENTRIES = 64;

/** Longest armored age file of one entry: 64 stanzas and a data key fit in a tenth of it. */
export const MAX_AGE_ENC_CHARS = 64 * 1024;

const isEmpty = (v: SopsNode | undefined): boolean => v === undefined || v === null || v === '' || (Array.isArray(v) && v.length === 0);

export function readMetadata(m: SopsMap, file: string): SopsMetadata {
  const bad = (code: 'bad_metadata' | 'missing_metadata', why: string) => new SecretsError(code, `${file}: sops metadata: ${why}`, { file });
  const str = (k: string, required: boolean): string | undefined => {
    const v = m.get(k);
    if (v === undefined || v === null) {
      if (required) throw bad('missing_metadata', `sops.${k} is missing (the file is truncated, or not written by sops)`);
      return undefined;
    }
    if (typeof v !== 'string') throw bad('bad_metadata', `sops.${k} must be a string`);
    return v;
  };
  if (!isEmpty(m.get('key_groups'))) throw new SecretsError('unsupported_key_groups', `${file}: sops key_groups (Shamir secret sharing) are not supported by latchgate; re-encrypt the file to plain age recipients (sops updatekeys with a .sops.yaml without key_groups)`, { file });
  for (const k of ['encrypted_comment_regex', 'unencrypted_comment_regex']) {
    if (!isEmpty(m.get(k))) throw bad('bad_metadata', `sops.${k} is not supported by latchgate (it reads values, not comments); re-encrypt with a key-based rule (encrypted_regex, unencrypted_suffix, ...)`);
  }
  const rules = RULE_KINDS.flatMap((kind) => {
    const value = str(kind, false);
    return value ? [{ kind, value }] : [];
  });
  if (rules.length > 1) throw bad('bad_metadata', `more than one of ${RULE_KINDS.join(', ')} is set (${rules.map((r) => r.kind).join(', ')}); sops allows one`);
  const mo = m.get('mac_only_encrypted');
  let macOnlyEncrypted: boolean;
  if (mo === undefined || mo === null || mo === false || mo === 'false' || mo === 'False') macOnlyEncrypted = false;
  else if (mo === true || mo === 'true' || mo === 'True') macOnlyEncrypted = true;
  else throw bad('bad_metadata', 'sops.mac_only_encrypted must be true or false');
  const ageNode = m.get('age');
  const age: AgeEntry[] = [];
  if (!isEmpty(ageNode)) {
    if (!Array.isArray(ageNode)) throw bad('bad_metadata', 'sops.age must be a list');
    if (ageNode.length > MAX_AGE_ENTRIES) throw bad('bad_metadata', `sops.age has ${ageNode.length} entries, more than the ${MAX_AGE_ENTRIES} latchgate reads (one per recipient); remove recipients with \`sops updatekeys\``);
    ageNode.forEach((e, i) => {
      const recipient = isMap(e) ? e.get('recipient') : undefined;
      const enc = isMap(e) ? e.get('enc') : undefined;
      if (typeof recipient !== 'string' || typeof enc !== 'string') throw bad('bad_metadata', `sops.age[${i}] must have the strings recipient and enc`);
      if (enc.length > MAX_AGE_ENC_CHARS) throw bad('bad_metadata', `sops.age[${i}].enc is ${enc.length} characters, more than the ${MAX_AGE_ENC_CHARS} of any age file sops writes for one recipient`);
      age.push({ recipient, enc });
    });
  }
  const others: SopsMap = new Map();
  for (const k of OTHER_SERVICES) if (!isEmpty(m.get(k))) others.set(k, m.get(k)!);
  return {
    age,
    lastmodified: str('lastmodified', true)!,
    mac: str('mac', true)!,
    rule: rules[0] ?? DEFAULT_RULE,
    macOnlyEncrypted,
    version: str('version', false) ?? '',
    others,
  };
}

/**
 * The MAC's associated data: lastmodified as Go prints it after reading it
 * (time.RFC3339: fractional seconds dropped, a zero offset written "Z").
 */
export function lastModifiedAad(text: string, file: string): string {
  const m = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/.exec(text);
  const ok = m && Number(m[2]) >= 1 && Number(m[2]) <= 12 && Number(m[3]) >= 1 && Number(m[3]) <= 31 && Number(m[4]) < 24 && Number(m[5]) < 60 && Number(m[6]) < 60;
  if (!m || !ok) throw new SecretsError('bad_metadata', `${file}: sops.lastmodified ${JSON.stringify(text.slice(0, 40))} is not an RFC 3339 time`, { file });
  const zone = m[8] === '+00:00' || m[8] === '-00:00' ? 'Z' : m[8]!;
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}${zone}`;
}

/** The current time as sops writes lastmodified: RFC 3339, UTC, whole seconds. */
export const nowRfc3339 = (now = new Date()): string => now.toISOString().replace(/\.\d+Z$/, 'Z');

/** The `sops` map in the order sops 3.9 writes it (empty key services as []). */
export function writeMetadata(md: SopsMetadata): SopsMap {
  const m: SopsMap = new Map();
  for (const k of ['kms', 'gcp_kms', 'azure_kv', 'hc_vault']) m.set(k, md.others.get(k) ?? []);
  m.set('age', md.age.map((e) => new Map<string, SopsNode>([['recipient', e.recipient], ['enc', e.enc]])));
  m.set('lastmodified', md.lastmodified);
  m.set('mac', md.mac);
  m.set('pgp', md.others.get('pgp') ?? []);
  for (const k of OTHER_SERVICES) if (!m.has(k) && md.others.has(k)) m.set(k, md.others.get(k)!);
  m.set(md.rule.kind, md.rule.value);
  if (md.macOnlyEncrypted) m.set('mac_only_encrypted', true);
  m.set('version', md.version || SOPS_FORMAT_VERSION);
  return m;
}
