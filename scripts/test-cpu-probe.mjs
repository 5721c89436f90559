// Loaded by scripts/run-tests.mjs into each test file's process (--import,
// with ?out=<file>): at exit it appends the CPU that process used, with the
// children it waited for (/proc/self/stat's utime, stime, cutime and cstime,
// in ticks of 1/100 s), and the file's name. On 2 cores the suite's time is
// its CPU, so the run can say which files cost it. A process killed by a
// signal writes nothing (the watchdog names those).
import { appendFileSync } from 'node:fs';
import { statFields } from './test-watchdog.mjs';

const out = new URL(import.meta.url).searchParams.get('out');
const file = process.argv[1];
if (out && file?.endsWith('.test.mjs')) {
  process.on('exit', () => {
    const ticks = statFields('self').slice(11, 15).reduce((a, b) => a + Number(b), 0);
    appendFileSync(out, `${(ticks / 100).toFixed(2)}\t${file}\n`);
  });
}
