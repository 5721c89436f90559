// Worker thread: turns a component into what the runtime instantiates
// (jco's JS glue and the core modules, fuel-metered). Slow (seconds for a
// large component), hence off the gate's main thread; runtime-compile.ts
// starts it and caches the result.
//
// The glue comes from @bytecodealliance/jco-transpile pinned at 0.1.1, not
// from the jco package's own transpile: later versions wrap every call in
// the component model's async task bookkeeping, which a synchronous call
// pays for too. Measured on the built-in http_api component: 0.09 ms per
// call and 0.22 ms per instantiation with 0.1.1, against 0.34 ms and 0.6 ms
// (docs/PROVIDERS.md). A pin moved forward must keep that.
// First: how V8 compiles and calls Wasm (runtime/wasm-flags.ts), before jco and binaryen load theirs.
import '../runtime/wasm-flags.js';
import { parentPort, workerData } from 'node:worker_threads';
import { componentWit } from '@bytecodealliance/jco';
import { transpileBytes } from '@bytecodealliance/jco-transpile';
import { checkComponentBinary } from './component-binary.js';
import { compilerId } from './compiler-id.js';
import { checkWorld } from './component-world.js';
import { meterFuel } from './runtime-fuel.js';

export interface CompileOutput {
  js: string;
  /** Core module file name (as the glue asks for it) to its metered bytes. */
  modules: Record<string, Uint8Array>;
  /** The component's imports, as jco names them ("latchgate:io/http"). */
  imports: string[];
}

/** What the worker answers: the output and the compile step that made it (compiler-id.ts, read from disk as the worker ran). */
export interface CompileAnswer {
  out: CompileOutput;
  compiler: string;
}

async function compile(component: Uint8Array): Promise<CompileOutput> {
  // Before any glue is generated: names that would be code in it, built-ins and a world other than a provider's.
  checkComponentBinary(component);
  checkWorld(await componentWit(component));
  // base64Cutoff 0: no core module inlined into the glue, where it would escape metering.
  const t = await transpileBytes(component, { name: 'component', instantiation: 'async', emitTypescriptDeclarations: false, base64Cutoff: 0 });
  const js = t.files['component.js'];
  if (!js) throw new Error('jco produced no component.js');
  const modules: Record<string, Uint8Array> = {};
  for (const [name, bytes] of Object.entries(t.files)) if (name.endsWith('.wasm')) modules[name] = meterFuel(bytes);
  const text = new TextDecoder().decode(js);
  for (const m of text.matchAll(/getCoreModule\('([^']+)'\)/g)) if (!modules[m[1]!]) throw new Error(`the glue asks for core module ${m[1]}, which jco did not emit`);
  if (/base64Compile\(/.test(text)) throw new Error('the glue compiles a core module inline, outside fuel metering');
  return { js: text, modules, imports: t.imports };
}

compile(workerData as Uint8Array).then(
  (out) => parentPort!.postMessage({ ok: true, out, compiler: compilerId() }),
  (e: unknown) => parentPort!.postMessage({ ok: false, error: e instanceof Error ? e.message : String(e) }),
);
