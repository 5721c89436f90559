// Launcher failures carry the exit code the CLI returns (125/126/127), so a
// caller can tell them from the agent's own exit status.
import { constants } from 'node:os';

export const EXIT_LAUNCHER = 125;
export const EXIT_CANNOT_EXECUTE = 126;
export const EXIT_NOT_FOUND = 127;

export class LaunchError extends Error {
  constructor(message: string, readonly exitCode: number = EXIT_LAUNCHER) {
    super(message);
    this.name = 'LaunchError';
  }
}

/**
 * Any error as a launcher failure (exit 125) in one line: one latchgate did
 * not expect here says so, and LATCHGATE_DEBUG=1 adds where it came from.
 */
export function asLaunchError(e: unknown): LaunchError {
  if (e instanceof LaunchError) return e;
  const err = e instanceof Error ? e : new Error(String(e));
  const where = process.env.LATCHGATE_DEBUG ? `\n${err.stack ?? ''}` : ' (unexpected here; LATCHGATE_DEBUG=1 shows where it came from)';
  return new LaunchError(`${err.message.split('\n')[0]}${where}`);
}

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno).map(([name, num]) => [num, name]),
);

export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno ${errno}`;
}
