// Where the public conformance corpora are, read in place: $LATCHGATE_TESTDATA,
// else the shared testdata folder beside this checkout (../shared/testdata).
// The Node matrix runs a copy of the project elsewhere and sets the variable.
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export const TESTDATA = process.env.LATCHGATE_TESTDATA || resolve(repoRoot, '..', 'shared', 'testdata');

/** A path in the corpora folder. */
export const testdata = (...parts) => join(TESTDATA, ...parts);
