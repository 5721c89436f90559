// The shape a provider component must have, checked on its WIT world (as
// wasm-tools prints it) before its glue is generated: one export, `execute:
// func(string) -> result<string, string>`, and imports of the latchgate:io
// interfaces alone. Nothing else is linked or called, and the glue then has
// no resource of the component's own to lift, whose destructor it would run
// from a garbage collection, outside any call.
import { IO_INTERFACES } from './runtime-types.js';

const EXECUTE = /^export execute: func\([a-z][a-z0-9-]*: string\) -> result<string, string>;$/;
const IMPORT = new RegExp(`^import (${IO_INTERFACES.map((i) => i.replace(/[/]/g, '\\/')).join('|')})(@[0-9A-Za-z.+-]+)?;$`);

/** Throws, naming the first line that does not fit, unless `wit` is a provider's world. */
export function checkWorld(wit: string): void {
  const start = wit.indexOf('world root {');
  const end = start < 0 ? -1 : wit.indexOf('\n}', start);
  if (end < 0) throw new Error('the component has no world wasm-tools can print; it is refused');
  const lines = wit.slice(start + 'world root {'.length, end).split('\n').map((l) => l.trim()).filter(Boolean);
  const odd = lines.find((l) => !EXECUTE.test(l) && !IMPORT.test(l));
  const fix = 'a provider exports only execute: func(task-json: string) -> result<string, string>, and imports only latchgate:io interfaces';
  if (odd !== undefined) throw new Error(`the component's world has ${JSON.stringify(odd.slice(0, 120))}: ${fix}; it is refused`);
  if (lines.filter((l) => EXECUTE.test(l)).length !== 1) throw new Error(`the component does not export execute: ${fix}; it is refused`);
}
