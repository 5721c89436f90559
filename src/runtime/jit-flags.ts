// How soon V8 optimizes the JavaScript of a process that serves: a gate,
// from its first request (src/gate/app.ts), or `latchgate mcp serve`. Most of a
// gate's code runs a few times per request, and V8 by default compiles such
// a function with TurboFan only after the bytecode of thousands of its calls
// (Node 20's V8 11.3: an interrupt budget of 66 KB per profiler tick; Node
// 22's V8 12.4: 3000 calls' worth, Maglev off), so a gate serving one agent's
// session of tens or hundreds of calls would run it in Ignition and
// Sparkplug throughout. Measured side by side on the http_fetch benchmark
// (bench/mcp-compare.mjs, two gates, 2 cores): a call through the gate's
// socket about 1 ms faster on Node 20 and 22, and 1 to 1.6 ms less of the
// gate's CPU per call. Node 24's V8 (13.6) compiles such code with Maglev
// after 400 calls; TurboFan after 400 too gave no steadier gain there (the
// socket's calls no faster, 1.5 ms more of the gate's CPU while it compiled):
// it is left as it is. Not set in short-lived commands, nor in a box's gate
// that has answered nothing, whose code runs once: earlier TurboFan work
// would only cost CPU there (a box's start, about 5% more).
import { setFlagsFromString } from 'node:v8';

let set: string | null | undefined;

/** The flag a serving process sets on this V8 (by its major version), or null. */
export function servingJitFlag(v8Version: string = process.versions.v8): string | null {
  const major = Number.parseInt(v8Version, 10);
  if (major < 12) return '--interrupt-budget=8192'; // 8x fewer bytes of bytecode per tick
  if (major === 12) return '--invocation-count-for-turbofan=400';
  return null;
}

/** Sets servingJitFlag() once in this process; returns it (null: nothing to set). */
export function tuneJitForServing(): string | null {
  if (set === undefined) {
    set = servingJitFlag();
    if (set !== null) setFlagsFromString(set);
  }
  return set;
}
