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

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno).map(([name, num]) => [num, name]),
);

export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno ${errno}`;
}
