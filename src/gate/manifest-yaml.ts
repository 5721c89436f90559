// A manifest's first step: its YAML text read as a value, and the line of
// any field for messages. The shipped manifests' values are made at build
// time (scripts/build-validators.mjs, dist/generated/manifest-yaml.json) and
// found by the SHA-256 of the text: such a text is not parsed again, and the
// yaml package is not loaded at all where only shipped manifests are read
// (most commands' gates; the parse and the package cost a command about a
// tenth of its start-up). Every other text, an operator's manifest or a
// shipped one changed since the build, is parsed here.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Document, LineCounter, Node as YamlNode } from 'yaml';
import { sha256Hex } from '../crypto/jcs.js';

/** Where a field is: the 1-based line of the key (for a mapping entry) or the item. */
export interface FieldLines {
  line(segments: readonly (string | number)[]): number;
}

export type ManifestYaml = { value: unknown; lines: FieldLines } | { issues: { line: number; message: string }[] };

/** A value made at build time, with the line of `version` (the one line a valid manifest's loading records). */
interface Prepared {
  value: unknown;
  versionLine: number;
}

export const PREPARED_FILE = new URL('../generated/manifest-yaml.json', import.meta.url);

const require = createRequire(import.meta.url);
let yamlModule: typeof import('yaml') | undefined;
const yaml = (): typeof import('yaml') => (yamlModule ??= require('yaml') as typeof import('yaml'));

let prepared: Map<string, Prepared> | undefined;

/** The build's table; empty when there is none (a build that ran tsc alone) or it cannot be read. */
function preparedTable(): Map<string, Prepared> {
  if (prepared) return prepared;
  prepared = new Map();
  try {
    const t = JSON.parse(readFileSync(PREPARED_FILE, 'utf8')) as Record<string, Prepared>;
    for (const [digest, p] of Object.entries(t)) if (p && typeof p.versionLine === 'number') prepared.set(digest, p);
  } catch {
    /* parsed below instead */
  }
  return prepared;
}

export const textDigest = (text: string): string => sha256Hex(text);

class Locator implements FieldLines {
  constructor(
    private readonly doc: Document,
    private readonly lc: LineCounter,
  ) {}

  private lineOfOffset(offset: number | undefined): number {
    return offset === undefined ? 1 : this.lc.linePos(offset).line;
  }

  line(segments: readonly (string | number)[]): number {
    const { isAlias, isMap, isScalar, isSeq } = yaml();
    let node: unknown = this.doc.contents;
    let line = this.lineOfOffset((node as YamlNode | null)?.range?.[0]);
    for (const seg of segments) {
      if (isAlias(node)) node = node.resolve(this.doc);
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(seg));
        if (!pair) return line;
        const keyNode = pair.key as YamlNode | null;
        line = this.lineOfOffset(keyNode?.range?.[0] ?? (pair.value as YamlNode | null)?.range?.[0]);
        node = pair.value;
      } else if (isSeq(node)) {
        const item = node.items[Number(seg)] as YamlNode | undefined;
        if (!item) return line;
        line = this.lineOfOffset(item.range?.[0]);
        node = item;
      } else {
        return line;
      }
    }
    return line;
  }
}

/** Parses the text: YAML errors and warnings, a document that is no mapping, or an alias bomb are issues. */
export function parseManifestYaml(text: string): ManifestYaml {
  const { LineCounter, isMap, parseDocument } = yaml();
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: true, uniqueKeys: true });
  const issues: { line: number; message: string }[] = [];
  for (const e of [...doc.errors, ...doc.warnings]) {
    const line = e.linePos?.[0]?.line ?? (e.pos?.[0] !== undefined ? lc.linePos(e.pos[0]).line : 1);
    const first = (e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?\s*$/, '');
    issues.push({ line, message: `YAML: ${first}` });
  }
  if (issues.length) return { issues };
  const lines = new Locator(doc, lc);
  if (!isMap(doc.contents)) return { issues: [{ line: lines.line([]), message: 'expected a mapping of manifest fields (action_id, version, ...)' }] };
  try {
    return { value: doc.toJS({ maxAliasCount: 100 }), lines };
  } catch (e) {
    return { issues: [{ line: 1, message: `YAML: ${(e as Error).message.split('\n')[0]}` }] };
  }
}

/**
 * The text's value: the build's when it made one for exactly this text
 * (its lines, but the version's, are found by parsing should a message need
 * them), else parsed now. The build's value is a fresh copy each time.
 */
export function readManifestYaml(text: string): ManifestYaml {
  const p = preparedTable().get(textDigest(text));
  if (!p) return parseManifestYaml(text);
  let parsed: FieldLines | undefined;
  const lines: FieldLines = {
    line: (segments) => {
      if (segments.length === 1 && segments[0] === 'version') return p.versionLine;
      parsed ??= (parseManifestYaml(text) as { lines: FieldLines }).lines;
      return parsed.line(segments);
    },
  };
  return { value: structuredClone(p.value), lines };
}

/** The build's table entry for a text (scripts/build-validators.mjs): undefined when its value would not survive JSON as it is. */
export function prepareManifestYaml(text: string, same: (a: unknown, b: unknown) => boolean): [string, Prepared] | undefined {
  const r = parseManifestYaml(text);
  if ('issues' in r) return undefined;
  const value = JSON.parse(JSON.stringify(r.value)) as unknown;
  if (!same(value, r.value)) return undefined;
  return [textDigest(text), { value, versionLine: r.lines.line(['version']) }];
}
