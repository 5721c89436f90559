// A request or response schema whose $ref chain comes back to where it
// started without stepping into the data (through allOf, anyOf, oneOf, not,
// if/then/else, dependentSchemas or $ref, all applied to the same value)
// would make its validator call itself without end: every document then
// overflows the stack instead of being judged. The registry refuses such a
// schema at load, naming the cycle. References are resolved within the
// schema document as JSON Schema 2020-12 does: a JSON pointer to a
// subschema, or an $anchor, in the resource an $id starts, or another
// resource of the document by its $id. A reference that cannot be followed
// so (into a value that is not a subschema, across an $id, outside the
// document, spelt differently from the $id it means) is refused too: what
// cannot be followed cannot be shown to end.
import { randomUUID } from 'node:crypto';

/** Keywords whose subschemas apply to the value the schema itself applies to. */
const IN_PLACE_ONE = ['not', 'if', 'then', 'else'] as const;
const IN_PLACE_LIST = ['allOf', 'anyOf', 'oneOf'] as const;
/** Keywords whose subschemas apply to parts of the value (deeper), or define schemas to refer to. */
const DEEPER_ONE = ['additionalProperties', 'propertyNames', 'items', 'contains', 'unevaluatedItems', 'unevaluatedProperties', 'contentSchema'] as const;
const DEEPER_MAP = ['properties', 'patternProperties', '$defs', 'definitions'] as const;
const DEEPER_LIST = ['prefixItems'] as const;

type Schema = Record<string, unknown>;

const isSchema = (v: unknown): v is Schema => typeof v === 'object' && v !== null && !Array.isArray(v);

interface Node {
  schema: Schema;
  /** JSON pointer from the document's root (for the message). */
  pointer: string;
  /** The resource (by its base URI) the node belongs to, and the node's pointer within it. */
  base: string;
  local: string;
}

const escape = (s: string): string => s.replace(/~/g, '~0').replace(/\//g, '~1');

/** Resolves `ref` against `base` as a URI; undefined when it is not one. */
function resolveUri(ref: string, base: string): URL | undefined {
  try {
    return new URL(ref, base);
  } catch {
    return undefined;
  }
}

/** Every subschema of the document, with the indexes references are resolved through. */
function index(root: Schema) {
  const nodes: Node[] = [];
  const bySchema = new Map<Schema, Node>();
  const byResource = new Map<string, Map<string, Node>>(); // base -> local pointer -> node
  const anchors = new Map<string, Node>(); // `${base}#${anchor}`
  const visit = (schema: Schema, pointer: string, base: string, local: string): void => {
    if (typeof schema.$id === 'string') {
      const u = resolveUri(schema.$id, base);
      if (u) {
        u.hash = '';
        base = u.href;
        local = '';
      }
    }
    const node: Node = { schema, pointer, base, local };
    nodes.push(node);
    bySchema.set(schema, node);
    let pointers = byResource.get(base);
    if (!pointers) byResource.set(base, (pointers = new Map()));
    pointers.set(local, node);
    if (typeof schema.$anchor === 'string') anchors.set(`${base}#${schema.$anchor}`, node);
    const child = (v: unknown, seg: string): void => {
      if (isSchema(v)) visit(v, `${pointer}/${seg}`, base, `${local}/${seg}`);
      // true and false are schemas too: a reference may lead to one (and stops there).
      else if (typeof v === 'boolean') pointers.set(`${local}/${seg}`, { schema: {}, pointer: `${pointer}/${seg}`, base, local: `${local}/${seg}` });
    };
    for (const k of [...IN_PLACE_ONE, ...DEEPER_ONE]) child(schema[k], k);
    for (const k of [...IN_PLACE_LIST, ...DEEPER_LIST]) {
      const list = schema[k];
      if (Array.isArray(list)) list.forEach((v, i) => child(v, `${k}/${i}`));
    }
    for (const k of [...DEEPER_MAP, 'dependentSchemas']) {
      const map = schema[k];
      if (isSchema(map)) for (const [name, v] of Object.entries(map)) child(v, `${k}/${escape(name)}`);
    }
  };
  // A base no schema can name, so that no $id inside takes the root's place.
  visit(root, '', `https://${randomUUID()}.invalid/schema.json`, '');
  return { nodes, bySchema, byResource, anchors };
}

/**
 * Why the schema's references could not end on some value: a $ref that
 * cannot be followed within the document, or the first cycle of subschemas
 * applied to one and the same value (its JSON pointers). Undefined when
 * every reference leads to a subschema and every cycle steps into the data.
 */
export function refProblem(schema: Schema): string | undefined {
  // As JSON: one object reached by two paths (a YAML alias) is two subschemas, as the validator sees it.
  const root = JSON.parse(JSON.stringify(schema)) as Schema;
  const { nodes, bySchema, byResource, anchors } = index(root);
  const target = (n: Node, ref: string): Node | undefined => {
    const u = resolveUri(ref, n.base);
    if (!u) return undefined;
    let fragment: string;
    try {
      fragment = decodeURIComponent(u.hash.slice(1));
    } catch {
      return undefined;
    }
    u.hash = '';
    if (fragment === '' || fragment.startsWith('/')) return byResource.get(u.href)?.get(fragment);
    return anchors.get(`${u.href}#${fragment}`);
  };
  const show = (p: string) => `#${p}`;
  const edges = new Map<Node, Node[]>();
  for (const n of nodes) {
    const out: Node[] = [];
    const s = n.schema;
    const take = (v: unknown) => {
      const m = isSchema(v) ? bySchema.get(v) : undefined;
      if (m) out.push(m);
    };
    for (const k of IN_PLACE_ONE) take(s[k]);
    for (const k of IN_PLACE_LIST) if (Array.isArray(s[k])) (s[k] as unknown[]).forEach(take);
    if (isSchema(s.dependentSchemas)) Object.values(s.dependentSchemas).forEach(take);
    if (s.$ref !== undefined) {
      const t = typeof s.$ref === 'string' ? target(n, s.$ref) : undefined;
      if (!t) return `$ref ${JSON.stringify(s.$ref)} at ${show(n.pointer)} does not lead to a subschema of this schema (a JSON pointer or $anchor in its resource, or an $id in the document, written as that $id is)`;
      out.push(t);
    }
    edges.set(n, out);
  }
  // Depth-first, iteratively (a schema may be deep): grey nodes are on the current path.
  const state = new Map<Node, 'grey' | 'black'>();
  for (const start of nodes) {
    if (state.has(start)) continue;
    const stack: { node: Node; next: Node[] }[] = [{ node: start, next: [...(edges.get(start) ?? [])] }];
    state.set(start, 'grey');
    while (stack.length) {
      const top = stack[stack.length - 1]!;
      const n = top.next.pop();
      if (!n) {
        state.set(top.node, 'black');
        stack.pop();
        continue;
      }
      const st = state.get(n);
      if (st === 'grey') {
        const from = stack.findIndex((f) => f.node === n);
        const cycle = [...stack.slice(from).map((f) => f.node.pointer), n.pointer];
        return `$ref cycle ${cycle.map(show).join(' -> ')} applies the schema to the same value without end; let every cycle pass through properties or items`;
      }
      if (st === undefined) {
        state.set(n, 'grey');
        stack.push({ node: n, next: [...(edges.get(n) ?? [])] });
      }
    }
  }
  return undefined;
}
