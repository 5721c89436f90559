// Reads both sides of the contract between src/ and the addon from their
// sources: the launch plan's keys and types (NativePlan in src/native/addon.ts,
// parse_plan in native/spawn.cc), the generated step, message and mount
// operation numbers, the fields of ChildPlan. Each reader throws on what it
// cannot read, so a new form of code fails the test instead of being skipped.
import ts from 'typescript';

/** Keys of a plan as `path -> type`: "ops[].kind" -> "number", "src?" marks an optional key. */
function put(keys, path, type, optional) {
  const key = optional ? `${path}?` : path;
  if (keys.has(path) || keys.has(`${path}?`)) throw new Error(`plan key ${path} is read twice`);
  keys.set(key, type);
}

const join = (prefix, key) => (prefix === '' ? key : `${prefix}.${key}`);

// The accessors of spawn.cc and the type each one checks.
const CPP_TYPES = {
  get_number: 'number',
  get_string: 'string',
  get_bool: 'boolean',
  get_buffer: 'Buffer',
  get_strings: 'string[]',
  get_numbers: 'number[]',
  get_object: 'object',
  get_object_or_null: 'object | null',
  get_array: 'array',
  opt_number: 'number',
  opt_string: 'string',
  opt_bool: 'boolean',
};

/** The body of one top-level C++ function, by name. */
export function cppFunction(text, name) {
  const start = text.search(new RegExp(`^\\S[^\\n(]*\\b${name}\\(`, 'm'));
  if (start < 0) throw new Error(`no function ${name}`);
  const end = text.indexOf('\n}\n', start);
  if (end < 0) throw new Error(`function ${name} has no end`);
  return text.slice(start, end + 2);
}

/**
 * The plan keys parse_plan reads, with the type its accessor checks. Object
 * variables are followed from the accessor that made them (get_object,
 * get_object_or_null, get_item on an array from get_array).
 */
export function cppPlanKeys(spawnCc) {
  const body = cppFunction(spawnCc, 'parse_plan');
  const raw = body.match(/\.(Get|Has)\("[^"]*"\)/);
  if (raw) throw new Error(`parse_plan reads ${raw[0]} without an accessor: use get_*/opt_*`);
  const keys = new Map();
  const objects = new Map([['o', '']]);
  const arrays = new Map();
  const allArrays = [];
  const CALL = /\b(get_\w+|opt_\w+)\(env, (\w+), (?:(\w+), )?"(\w+)"([^)]*)/g;
  for (const [call, fn, from, index, key, rest] of body.matchAll(CALL)) {
    const out = /&(\w+)/.exec(rest)?.[1];
    if (fn === 'get_item') {
      const array = arrays.get(from);
      if (array === undefined || index === undefined) throw new Error(`${call}: ${from} is not an array read with get_array`);
      if (!array.path.endsWith(key)) throw new Error(`${call}: the error names ${key}, the array is ${array.path}`);
      array.items = true;
      objects.set(out, `${array.path}[]`);
      continue;
    }
    const type = CPP_TYPES[fn];
    if (type === undefined) throw new Error(`${call}: unknown accessor ${fn}`);
    if (index !== undefined) throw new Error(`${call}: unexpected argument ${index}`);
    const prefix = objects.get(from);
    if (prefix === undefined) throw new Error(`${call}: ${from} is not an object of the plan`);
    const path = join(prefix, key);
    if (type === 'array') {
      const a = { path, items: false };
      arrays.set(out, a);
      allArrays.push(a);
    }
    else if (type.startsWith('object')) objects.set(out, path);
    put(keys, path, type, fn.startsWith('opt_'));
  }
  for (const a of allArrays) {
    if (!a.items) throw new Error(`parse_plan reads the array ${a.path} but none of its items (get_item)`);
    keys.set(a.path, 'object[]');
  }
  if (keys.size === 0) throw new Error('parse_plan reads no key');
  return keys;
}

/** The keys of one interface of a TypeScript file, nested interfaces and literals followed. */
export function tsPlanKeys(source, name = 'NativePlan') {
  const file = ts.createSourceFile('addon.ts', source, ts.ScriptTarget.ES2022, true);
  const interfaces = new Map();
  file.forEachChild((n) => {
    if (ts.isInterfaceDeclaration(n)) interfaces.set(n.name.text, n);
  });
  const keys = new Map();
  const members = (node) => {
    if (ts.isTypeLiteralNode(node)) return node.members;
    if (ts.isTypeReferenceNode(node) && interfaces.has(node.typeName.getText())) return interfaces.get(node.typeName.getText()).members;
    return null;
  };
  const typeOf = (node, path) => {
    const kw = { [ts.SyntaxKind.NumberKeyword]: 'number', [ts.SyntaxKind.StringKeyword]: 'string', [ts.SyntaxKind.BooleanKeyword]: 'boolean' }[node.kind];
    if (kw) return kw;
    if (ts.isTypeReferenceNode(node) && node.typeName.getText() === 'Buffer') return 'Buffer';
    const m = members(node);
    if (m) {
      walk(m, path);
      return 'object';
    }
    if (ts.isArrayTypeNode(node)) {
      const item = typeOf(node.elementType, `${path}[]`);
      return `${item}[]`;
    }
    if (ts.isUnionTypeNode(node) && node.types.length === 2) {
      const [a, b] = node.types;
      if (ts.isLiteralTypeNode(b) && b.literal.kind === ts.SyntaxKind.NullKeyword) return `${typeOf(a, path)} | null`;
    }
    throw new Error(`${name}.${path}: type ${node.getText()} is not one the addon reads`);
  };
  const walk = (list, prefix) => {
    for (const m of list) {
      if (!ts.isPropertySignature(m) || !m.type) throw new Error(`${name}: ${m.getText()} is not a plain property`);
      const path = join(prefix, m.name.getText());
      put(keys, path, typeOf(m.type, path), m.questionToken !== undefined);
    }
  };
  const root = interfaces.get(name);
  if (!root) throw new Error(`no interface ${name}`);
  walk(root.members, '');
  return keys;
}

/** The keys of a plan as sent (a real value), with the type each value has. */
export function valueKeys(value) {
  const keys = new Map();
  const typeOf = (v, path) => {
    if (v === null) return 'null';
    if (Buffer.isBuffer(v)) return 'Buffer';
    if (Array.isArray(v)) {
      const items = new Set(v.map((x) => typeOf(x, `${path}[]`)));
      if (items.size > 1) throw new Error(`${path} holds ${[...items].join(' and ')}`);
      return items.size === 0 ? 'array' : `${[...items][0]}[]`;
    }
    if (typeof v === 'object') {
      walk(v, path);
      return 'object';
    }
    return typeof v;
  };
  const walk = (o, prefix) => {
    for (const [k, v] of Object.entries(o)) {
      const path = join(prefix, k);
      const type = typeOf(v, path);
      const seen = keys.get(path);
      if (seen !== undefined && seen !== type) throw new Error(`${path} is ${seen} and ${type}`);
      keys.set(path, type);
    }
  };
  walk(value, '');
  return keys;
}

/** Differences between two key maps, one line each; empty when they agree. */
export function compareKeys(a, b, aName, bName) {
  const out = [];
  for (const [k, t] of a) {
    if (!b.has(k)) out.push(`${k} (${t}): in ${aName}, not in ${bName}`);
    else if (b.get(k) !== t) out.push(`${k}: ${t} in ${aName}, ${b.get(k)} in ${bName}`);
  }
  for (const [k, t] of b) if (!a.has(k)) out.push(`${k} (${t}): in ${bName}, not in ${aName}`);
  return out;
}

/** Whether a value's keys fit the declared ones: a declared optional key may be absent, null fits `T | null`, an empty array any array. */
export function undeclaredKeys(sent, declared) {
  const out = [];
  for (const [k, t] of sent) {
    const want = declared.get(k) ?? declared.get(`${k}?`);
    if (want === undefined) out.push(`${k} (${t}): sent, not declared`);
    else if (t !== want && !(t === 'null' && want.endsWith(' | null')) && !(t === 'array' && want.endsWith('[]')) && !(`${t} | null` === want)) {
      out.push(`${k}: sent as ${t}, declared ${want}`);
    }
  }
  return out;
}

/** `{ STEP: { SYNC: 1, ... }, MSG: ..., OP: ... }` from the enums of a C++ header. */
export function cppEnums(header) {
  const out = {};
  for (const [, enumName, body] of header.matchAll(/\benum (\w+) : \w+ \{([^}]*)\}/g)) {
    for (const [, prefix, name, value] of body.matchAll(/^\s*([A-Z]+)_(\w+) = (\d+),/gm)) {
      out[prefix] ??= { enum: enumName };
      out[prefix][name] = Number(value);
    }
  }
  return out;
}

/** The fields of a C++ struct, in order. */
export function structFields(header, name) {
  const m = new RegExp(`struct ${name} \\{([^]*?)\\n\\};`).exec(header);
  if (!m) throw new Error(`no struct ${name}`);
  const body = m[1].replace(/\/\/.*$/gm, '');
  return body
    .split(';')
    .map((d) => d.trim())
    .filter(Boolean)
    .flatMap((d) => {
      const decl = /^(?:const\s+)?[\w:]+(?:\s*\*)?(?:\s+const)?(?:\s*\*)?\s+(.+)$/.exec(d.replace(/\s+/g, ' '));
      if (!decl) throw new Error(`${name}: cannot read the field ${d}`);
      return decl[1].split(',').map((f) => f.replace(/[*\s]/g, ''));
    });
}

/** C++ text without comments and string literals (for looking at code only). */
export function codeOnly(text) {
  return text.replace(/\/\/.*$/gm, '').replace(/\/\*[^]*?\*\//g, '').replace(/"(?:[^"\\\n]|\\.)*"/g, '""');
}

/** Declared keys that a sent plan lacks: required ones whose object was sent (a null one, an empty array's items excepted). */
export function missingKeys(sent, declared) {
  const out = [];
  for (const [k, t] of declared) {
    if (k.endsWith('?')) continue;
    const dot = k.lastIndexOf('.');
    const parent = dot < 0 ? '' : k.slice(0, dot);
    if (parent.endsWith('[]') && sent.get(parent.slice(0, -2)) !== 'object[]') continue;
    if (parent !== '' && !parent.endsWith('[]') && sent.get(parent) !== 'object') continue;
    if (!sent.has(k)) out.push(`${k} (${t}): declared, not sent`);
  }
  return out;
}

/**
 * What the numbers of the protocol are used for: a step no fail() reports, a
 * message the box never sends or src/ never reads, a mount operation mounts.cc
 * does not make or src/ never plans, is dead and should go from protocol.json.
 * cc: native/*.cc texts (the generated header left out); src: src/ TypeScript.
 */
export function protocolUsage(enums, cc, src) {
  const cpp = codeOnly([...cc.values()].join('\n'));
  const ts = [...src.values()].join('\n');
  const out = [];
  for (const name of Object.keys(enums.STEP ?? {}).filter((n) => n !== 'enum')) {
    if (!new RegExp(`\\bfail\\(p, STEP_${name}\\b`).test(cpp)) out.push(`STEP_${name}: no fail() in native/ reports it`);
  }
  for (const name of Object.keys(enums.MSG ?? {}).filter((n) => n !== 'enum')) {
    if (!new RegExp(`\\bMSG_${name}\\b`).test(cpp)) out.push(`MSG_${name}: native/ never sends it`);
    if (!new RegExp(`\\bMSG\\.${name}\\b`).test(ts)) out.push(`MSG_${name}: src/ never reads it`);
  }
  for (const name of Object.keys(enums.OP ?? {}).filter((n) => n !== 'enum')) {
    if (!new RegExp(`\\bcase OP_${name}:`).test(cpp)) out.push(`OP_${name}: no case of native/ makes it`);
    if (!new RegExp(`\\bOP\\.${name}\\b`).test(ts)) out.push(`OP_${name}: src/ never plans it`);
  }
  return out;
}

/** ChildPlan fields the parent (spawn.cc) never sets or the child side never reads. */
export function childPlanProblems(commonH, spawnCc, child) {
  const set = codeOnly(spawnCc);
  const read = codeOnly([...child.values()].join('\n'));
  const out = [];
  for (const f of structFields(commonH, 'ChildPlan')) {
    if (!new RegExp(`&p\\.${f}\\b|\\bp\\.${f}(\\.\\w+)?\\s*=[^=]`).test(set)) out.push(`ChildPlan.${f}: spawn.cc never sets it`);
    if (!new RegExp(`\\bp\\.${f}\\b`).test(read)) out.push(`ChildPlan.${f}: the child never reads it`);
  }
  return out;
}

// What may not run between clone() and execve(): the child is a copy of a
// multi-threaded process, where a lock another thread held stays locked.
/** glibc's set-id calls, which signal and wait for the process's other threads (nptl setxid). */
export const SET_ID_WRAPPER = /\b(setgroups|set(?:res|re|e)?[ug]id)\s*\(/;

const CHILD_FORBIDDEN = [
  [/\bstd::/, 'the C++ library (allocates)'],
  [/\bnew\b|\bdelete\b/, 'new/delete'],
  [/\b(malloc|calloc|realloc|free|strdup|asprintf)\s*\(/, 'malloc and friends'],
  [/\b(throw|try|catch)\b/, 'exceptions'],
  [/\bNapi::|\bnapi_|\buv_/, 'Node-API or libuv'],
  [/\b(f?printf|fopen|opendir|getpw\w*|getgr\w*|syslog|strerror|setenv|putenv)\s*\(/, 'a libc call that allocates or locks'],
  // glibc applies these to every thread it knows of: after a raw clone() the parent's, which are not there.
  [SET_ID_WRAPPER, "a glibc set-id wrapper (it waits for the parent's threads; use syscall(SYS_...))"],
];
const CHILD_INCLUDES = /#include\s*[<"](string|vector|deque|memory|map|functional|napi\.h|uv\.h|iostream|sstream)[>"]/;

/** Allocation, exceptions and locking calls in the files that run in the box's child. */
export function childSideProblems(child) {
  const out = [];
  for (const [file, text] of child) {
    const inc = CHILD_INCLUDES.exec(text);
    if (inc) out.push(`${file}: includes ${inc[1]}`);
    const code = codeOnly(text);
    for (const [re, what] of CHILD_FORBIDDEN) {
      const m = re.exec(code);
      if (m) out.push(`${file}: ${what} (${m[0].trim()})`);
    }
    for (const [call] of code.matchAll(/\bfail\(p[^;]*;/g)) {
      if (!/^fail\(p, STEP_\w+, [^,)]+/.test(call)) out.push(`${file}: ${call} does not name a step and an errno`);
    }
  }
  return out;
}

/** The method names an interface of a TypeScript file declares. */
export function tsMethods(source, name) {
  const file = ts.createSourceFile('addon.ts', source, ts.ScriptTarget.ES2022, true);
  let found;
  file.forEachChild((n) => {
    if (ts.isInterfaceDeclaration(n) && n.name.text === name) found = n;
  });
  if (!found) throw new Error(`no interface ${name}`);
  return found.members.map((m) => {
    if (!ts.isMethodSignature(m)) throw new Error(`${name}: ${m.getText()} is not a method`);
    return m.name.getText();
  });
}
