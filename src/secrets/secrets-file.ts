// The operations of `latchgate secrets` on one SOPS file: a secret is a
// top-level key named UPPER_SNAKE_CASE whose value is an encrypted string.
// When each was last set is kept in the file itself, in the map
// `latchgate_changed_unencrypted` (NAME -> RFC 3339 time): its `_unencrypted`
// suffix keeps it readable, sops and other tools accept it, and the MAC
// covers its values. Every change rewrites the file atomically; the data key
// stays unless a recipient is removed or `rotate` asks for a new one. One
// change at a time: each holds the file's lock (file-lock.ts).
import { mkdir, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { generateAgeIdentity, parseAgeRecipient, type AgeIdentity } from './age.js';
import { writeFileAtomic, writeTarget, type AtomicOptions } from './atomic-write.js';
import { SecretsError } from './errors.js';
import { withFileLock } from './file-lock.js';
import { nowRfc3339 } from './sops-metadata.js';
import { openSopsFile, type OpenedSops } from './sops-read.js';
import { newDataKey, type EncryptOptions } from './sops-encrypt.js';
import { writeSopsFile } from './sops-write.js';
import { secretEntries, secretValues, unusableError } from './secret-values.js';
import { isMap, type SopsMap, type SopsNode } from './sops-value.js';

export const SECRET_NAME_RULE = /^[A-Z][A-Z0-9_]*$/;
export const CHANGED_KEY = 'latchgate_changed_unencrypted';

export interface SecretsFileRef {
  sopsFile: string;
  identities: readonly AgeIdentity[];
  /** Tests: called after each step of the atomic write. */
  atomic?: AtomicOptions;
}

export function checkSecretName(name: string): void {
  if (!SECRET_NAME_RULE.test(name)) {
    throw new SecretsError('bad_name', `${JSON.stringify(name.slice(0, 80))} is not a secret name: names are UPPER_SNAKE_CASE (${SECRET_NAME_RULE.source}: a capital letter, then capitals, digits and "_"), e.g. OPENAI_API_KEY`);
  }
}

/** A new age identity file (0600) and an empty SOPS file encrypted to it; neither may exist. */
export async function initSecrets(o: { sopsFile: string; ageKeyFile: string; now?: Date }): Promise<{ recipient: string }> {
  for (const f of [o.ageKeyFile, o.sopsFile]) {
    if (await stat(f).then(() => true, () => false)) throw new SecretsError('exists', `${f} exists already; \`latchgate secrets init\` overwrites nothing (use it as it is, or move it away first)`, { file: f });
  }
  for (const f of [o.ageKeyFile, o.sopsFile]) await mkdir(dirname(f), { recursive: true, mode: 0o700 });
  const id = generateAgeIdentity();
  const keyText = `# created: ${nowRfc3339(o.now)}\n# public key: ${id.recipient}\n${id.secretKey}\n`;
  try {
    await writeFileAtomic(o.ageKeyFile, keyText, { newFileMode: 0o600, exclusive: true });
  } catch (e) {
    throw new SecretsError((e as NodeJS.ErrnoException).code === 'EEXIST' ? 'exists' : 'write_failed', `${o.ageKeyFile}: cannot write the age key: ${(e as Error).message}`, { file: o.ageKeyFile });
  }
  await writeSopsFile(o.sopsFile, new Map(), { recipients: [id.recipient], atomic: { exclusive: true }, ...(o.now ? { now: o.now } : {}) });
  return { recipient: id.recipient };
}

export interface SecretEntry { name: string; changed: string | null }

/** Every secret's name and when it was last set (null: set by another tool); never a value. */
export async function listSecrets(ref: SecretsFileRef): Promise<{ secrets: SecretEntry[]; recipients: string[]; lastModified: string }> {
  const opened = await openSopsFile({ file: ref.sopsFile, identities: [...ref.identities] });
  const changed = changedMap(opened.plain);
  const secrets = [...secretValues(opened.document).keys()].map((name) => {
    const t = changed.get(name);
    return { name, changed: typeof t === 'string' ? t : null };
  });
  return { secrets, recipients: opened.document.recipients, lastModified: opened.document.lastModified };
}

export async function getSecret(ref: SecretsFileRef, name: string): Promise<string> {
  checkSecretName(name);
  const opened = await openSopsFile({ file: ref.sopsFile, identities: [...ref.identities] });
  const v = secretEntries(opened.document).get(name);
  if (v !== undefined && typeof v !== 'string') throw unusableError(ref.sopsFile, name, v);
  if (v === undefined) throw new SecretsError('no_such_secret', `${ref.sopsFile}: no secret ${name} (\`latchgate secrets list\` shows the names)`, { file: ref.sopsFile, keyPath: `["${name}"]` });
  return v;
}

export async function setSecret(ref: SecretsFileRef, name: string, value: string, now = new Date()): Promise<void> {
  checkSecretName(name);
  if (value === '') throw new SecretsError('bad_value', `${name}: an empty value; to delete a secret use \`latchgate secrets remove ${name}\``);
  await rewrite(ref, (o) => {
    const plain = withoutChanged(o.plain);
    plain.set(name, value);
    return { plain: withChanged(plain, new Map([...changedMap(o.plain), [name, nowRfc3339(now)]])) };
  });
}

export async function removeSecret(ref: SecretsFileRef, name: string): Promise<void> {
  checkSecretName(name);
  await rewrite(ref, (o) => {
    if (!o.plain.has(name)) throw new SecretsError('no_such_secret', `${ref.sopsFile}: no secret ${name}`, { file: ref.sopsFile, keyPath: `["${name}"]` });
    const plain = withoutChanged(o.plain);
    plain.delete(name);
    const changed = changedMap(o.plain);
    changed.delete(name);
    return { plain: withChanged(plain, changed) };
  });
}

/** A recipient more: the same data key, encrypted to it too. */
export async function addRecipient(ref: SecretsFileRef, recipient: string): Promise<void> {
  parseAgeRecipient(recipient);
  await rewrite(ref, (o) => {
    const now = o.document.recipients;
    if (now.includes(recipient)) throw new SecretsError('exists', `${ref.sopsFile}: ${recipient} is a recipient already`, { file: ref.sopsFile });
    return { plain: o.plain, recipients: [...now, recipient] };
  });
}

/**
 * A recipient less. The data key is replaced too (every value re-encrypted):
 * the removed holder may have kept the old one. The last recipient is never
 * removed; one whose removal leaves none of the configured identities able
 * to read the file only with force.
 */
export async function removeRecipient(ref: SecretsFileRef, recipient: string, force = false): Promise<void> {
  await rewrite(ref, (o) => {
    const now = o.document.recipients;
    if (!now.includes(recipient)) throw new SecretsError('no_such_recipient', `${ref.sopsFile}: ${recipient} is not a recipient (recipients: ${now.join(', ')})`, { file: ref.sopsFile });
    const left = now.filter((r) => r !== recipient);
    if (left.length === 0) throw new SecretsError('last_recipient', `${ref.sopsFile}: ${recipient} is the last recipient; without one nobody could read the file. Add the new one first (\`latchgate secrets recipients add\`)`, { file: ref.sopsFile });
    const mine = new Set(ref.identities.map((i) => i.publicKey));
    if (!force && !left.some((r) => mine.has(r))) {
      throw new SecretsError('lockout', `${ref.sopsFile}: removing ${recipient} leaves none of your identities (${[...mine].join(', ')}) a recipient: you could no longer read the file. Pass --force if that is what you want`, { file: ref.sopsFile });
    }
    return { plain: o.plain, recipients: left, newDataKey: true };
  });
}

/** A new data key; every value re-encrypted under it, and it encrypted to every recipient. */
export async function rotateDataKey(ref: SecretsFileRef): Promise<void> {
  await rewrite(ref, (o) => ({ plain: o.plain, newDataKey: true }));
}

interface Change { plain: SopsMap; recipients?: string[]; newDataKey?: boolean }

/**
 * Read, change, write: under the file's lock, so concurrent changes all land.
 * A symlink is resolved first: the lock and the write are on the real file,
 * whichever name a writer used.
 */
async function rewrite(ref: SecretsFileRef, change: (o: OpenedSops) => Change): Promise<void> {
  const real = { ...ref, sopsFile: await writeTarget(ref.sopsFile) };
  return withFileLock(real.sopsFile, () => rewriteLocked(real, change));
}

async function rewriteLocked(ref: SecretsFileRef, change: (o: OpenedSops) => Change): Promise<void> {
  const opened = await openSopsFile({ file: ref.sopsFile, identities: [...ref.identities] });
  if (opened.document.format !== 'yaml') {
    throw new SecretsError('unsupported_format', `${ref.sopsFile}: latchgate writes SOPS YAML files only, and this one is ${opened.document.format}; edit it with sops, or convert it (sops -d --output-type yaml, then latchgate secrets set)`, { file: ref.sopsFile });
  }
  const c = change(opened);
  const md = opened.metadata;
  const recipients = c.recipients ?? opened.document.recipients;
  if (c.newDataKey && md.others.size > 0) {
    throw new SecretsError('unsupported_key_service', `${ref.sopsFile}: the data key is also encrypted to ${[...md.others.keys()].join(', ')}, which latchgate cannot encrypt to; a new data key would lock them out. Use \`sops rotate\` / \`sops updatekeys\` for this file`, { file: ref.sopsFile });
  }
  const o: EncryptOptions = c.newDataKey
    ? { recipients, dataKey: newDataKey(), rule: md.rule, macOnlyEncrypted: md.macOnlyEncrypted }
    : { recipients, dataKey: opened.dataKey, ageEntries: md.age, rule: md.rule, macOnlyEncrypted: md.macOnlyEncrypted, others: md.others };
  const mine = new Set(ref.identities.map((i) => i.publicKey));
  const readable = recipients.some((r) => mine.has(r));
  await writeSopsFile(ref.sopsFile, c.plain, { ...o, ...(ref.atomic ? { atomic: ref.atomic } : {}), ...(readable ? { verifyWith: ref.identities } : {}) });
}

function changedMap(plain: SopsMap): Map<string, SopsNode> {
  const m = plain.get(CHANGED_KEY);
  return isMap(m ?? null) ? new Map(m as SopsMap) : new Map();
}

const withoutChanged = (plain: SopsMap): SopsMap => new Map([...plain].filter(([k]) => k !== CHANGED_KEY));

/** The change times last, only for names that are still there. */
function withChanged(plain: SopsMap, changed: Map<string, SopsNode>): SopsMap {
  const kept = new Map([...changed].filter(([k]) => plain.has(k)));
  return kept.size > 0 ? new Map([...plain, [CHANGED_KEY, kept]]) : plain;
}
