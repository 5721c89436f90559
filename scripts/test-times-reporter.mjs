// A node:test reporter (scripts/run-tests.mjs adds it beside TAP): at the end,
// the slowest test files, each by its wall time (from the moment the runner
// started the file to its end) and the sum of its top-level tests'
// durations. Where the suite's time goes, printed with every run.
const SHOWN = 20;

export default async function* testTimes(source) {
  const files = new Map();
  const of = (file) => {
    let f = files.get(file);
    if (!f) files.set(file, (f = { start: undefined, end: undefined, tests: 0 }));
    return f;
  };
  for await (const e of source) {
    const file = e.data?.file;
    if (!file || e.data.nesting !== 0) continue;
    const f = of(file);
    // The file's own events carry its path as their name; its tests', their names.
    if (e.data.name === file) {
      if (e.type === 'test:dequeue') f.start = performance.now();
      if (e.type === 'test:complete') f.end = performance.now();
    } else if (e.type === 'test:pass' || e.type === 'test:fail') {
      f.tests += e.data.details?.duration_ms ?? 0;
    }
  }
  const wall = (f) => (f.start !== undefined && f.end !== undefined ? f.end - f.start : 0);
  const rows = [...files].map(([file, f]) => ({ file, wall: wall(f), tests: f.tests })).sort((a, b) => b.wall - a.wall || b.tests - a.tests);
  const s = (ms) => `${(ms / 1000).toFixed(1)} s`.padStart(8);
  yield `test files, the ${Math.min(SHOWN, rows.length)} slowest of ${rows.length} (wall from start to end; sum of top-level tests):\n`;
  for (const r of rows.slice(0, SHOWN)) yield `${s(r.wall)} ${s(r.tests)}  ${r.file.replace(`${process.cwd()}/`, '')}\n`;
}
