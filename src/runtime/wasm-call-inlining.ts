// Node 20's V8 (11.3) and Node 22's (12.4) kill the whole process (SIGTRAP, "Fatal error ...
// unreachable code" in Deoptimizer::DoComputeBuiltinContinuation) when
// TurboFan code that inlined a JS->Wasm call is deoptimized lazily while the
// Wasm function runs and that function returns an externref, which is how
// cedar-wasm (wasm-bindgen) answers every call. A major GC during a Cedar
// decision is enough: the gate died after a few thousand executions under
// load. Not inlining JS->Wasm calls keeps TurboFan off that path (the flag
// exists in every V8 since; Chrome once turned it off the same way); the cost
// is the generic wrapper on each call into Wasm, well under a microsecond.
// Node 24's V8 (13.6) survives the same scenario; the flag stays, as cheap there.
// Import this module before any code that calls into Wasm gets hot.
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--no-turbo-inline-js-wasm-calls');
