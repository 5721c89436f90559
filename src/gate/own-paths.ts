// latchgate's own files and directories for a gate setup: the configuration
// files read and what they name that the host trusts or runs (certificates,
// manifests, a policy, checkpoints, programs), the user config directory,
// the state and runtime directories. No box may write them
// (src/sandbox/own-paths.ts), and no provider reads or writes them through
// the fs host (src/providers/host-fs.ts), wherever a root shows them.
import { stateDir, userConfigDir } from '../config/paths.js';
import type { ProtectRequest } from '../config/box-requests.js';
import type { GateSetup } from './setup.js';

/** A path latchgate itself depends on, with what it is (for error messages). */
export interface OwnPath extends ProtectRequest {
  what: string;
}

/** The directories come last: the state directories, then the runtime directory. */
export function ownPaths(s: Pick<GateSetup, 'configFiles' | 'trustedPaths' | 'stateDir' | 'runtimeDir'>, env: NodeJS.ProcessEnv = process.env): OwnPath[] {
  return [
    ...s.configFiles.map((path) => ({ path, type: 'file' as const, what: 'configuration file' })),
    // What the configuration names that the host trusts or runs later: rewritten, it would be trusted next time.
    ...s.trustedPaths.map((t) => ({ path: t.path, type: t.type, what: `${t.key} (named by the configuration; the host trusts or runs it)` })),
    { path: userConfigDir(env), type: 'dir', what: 'user config directory' },
    { path: stateDir(env), type: 'dir', what: 'state directory (trust store, ledger, keys)' },
    { path: s.stateDir, type: 'dir', what: 'state directory (ledger, keys)' },
    { path: s.runtimeDir, type: 'dir', what: 'runtime directory' },
  ];
}
