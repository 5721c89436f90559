// How V8 compiles and calls WebAssembly in this process: Cedar and OPA
// (policy), the providers' components and, compiling them, jco and binaryen.
// V8 flags are the process's: every thread gets them. Import this module
// first, before any module that compiles Wasm or calls into it.
//
// 1. Liftoff, V8's baseline compiler, alone (--liftoff-only): TurboFan
//    otherwise compiles in the background, on the other cores, code these
//    processes mostly run once. Measured on Node 20 (2 cores): loading Cedar
//    took 1.3 s of CPU against 0.33 s, a box's start with its gate 2.7 s
//    against 1.5 s (1.65 s of wall time against 1.15 s), compiling the
//    built-in providers 9.0 s against 4.2 s; Node 22 and 24 halve Cedar's load
//    too. What it costs: a decision Cedar has not made before takes 0.23 ms
//    against 0.15 ms (most are remembered, src/policy/cedar.ts); a
//    provider's guest time on the http_fetch benchmark did not change.
//    Node 24's V8 (13.6) draws a flag's implications only at start-up:
//    the two that --liftoff-only implies are set with it.
//
// 2. No inlining of JS->Wasm calls (--no-turbo-inline-js-wasm-calls). Node
//    20's V8 (11.3) and Node 22's (12.4) kill the whole process (SIGTRAP,
//    "Fatal error ... unreachable code" in
//    Deoptimizer::DoComputeBuiltinContinuation) when TurboFan code that
//    inlined a JS->Wasm call is deoptimized lazily while the Wasm function
//    runs and that function returns an externref, which is how cedar-wasm
//    (wasm-bindgen) answers every call. A major GC during a Cedar decision is
//    enough: the gate died after a few thousand executions under load. Not
//    inlining keeps TurboFan off that path (the flag exists in every V8
//    since; Chrome once turned it off the same way); the cost is the generic
//    wrapper on each call into Wasm, well under a microsecond. Node 24's V8
//    (13.6) survives the same scenario; the flag stays, as cheap there.
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--liftoff-only');
setFlagsFromString('--no-wasm-tier-up');
setFlagsFromString('--no-wasm-dynamic-tiering');
setFlagsFromString('--no-turbo-inline-js-wasm-calls');
