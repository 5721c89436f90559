// `latchgate up --json` as a test starts it: the process and the first line
// it prints (its ready report), or undefined when it exits before.
import { spawn } from 'node:child_process';

export async function spawnUp(cli, opts = {}) {
  const proc = spawn(process.execPath, [cli, 'up', '--json'], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  const ready = await new Promise((resolve) => {
    proc.stdout.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(JSON.parse(out));
    });
    proc.once('exit', () => resolve(undefined));
  });
  return { proc, ready, output: () => `${out}${err}` };
}
