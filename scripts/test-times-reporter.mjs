// A node:test reporter (scripts/run-tests.mjs adds it beside TAP): at the end,
// the slowest test files, each by the wall time from the moment its run was
// seen to start to its last result, and the sum of its top-level tests'
// durations. Where the suite's time goes, printed with every run.
const SHOWN = 20;

export default async function* testTimes(source) {
  const files = new Map();
  const seen = (file) => {
    let f = files.get(file);
    if (!f) files.set(file, (f = { first: performance.now(), last: 0, tests: 0 }));
    return f;
  };
  for await (const e of source) {
    const file = e.data?.file;
    if (!file) continue;
    const f = seen(file);
    if ((e.type === 'test:pass' || e.type === 'test:fail') && e.data.nesting === 0) {
      f.last = performance.now();
      f.tests += e.data.details?.duration_ms ?? 0;
    }
  }
  const rows = [...files].map(([file, f]) => ({ file, wall: Math.max(0, f.last - f.first), tests: f.tests })).sort((a, b) => b.wall - a.wall);
  const s = (ms) => `${(ms / 1000).toFixed(1)} s`.padStart(8);
  yield `test files, the ${Math.min(SHOWN, rows.length)} slowest of ${rows.length} (wall from start to last result; sum of top-level tests):\n`;
  for (const r of rows.slice(0, SHOWN)) yield `${s(r.wall)} ${s(r.tests)}  ${r.file.replace(`${process.cwd()}/`, '')}\n`;
}
