// latchgate itself inside the box, read-only, so the agent can run
// `latchgate` and start the MCP server `latchgate-mcp` there: the package
// (compiled code, dependencies, package.json) and the Node that runs it are
// mounted at their host paths, and /run/latchgate/bin holds two commands
// that run them. Inside the box both reach the host only through the gate
// socket, as the box's principal; nothing here is trusted by the host. The
// host runs the same files after the box exits, so they are latchgate's own
// paths: read-only in the box wherever a writable mount holds them.
import { existsSync, lstatSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { installMounts, inSystemTree } from '../config/profiles.js';
import { LaunchError } from '../core/errors.js';
import { shellWord } from '../core/shell-word.js';
import { aliasableFiles, refuseAliasedFiles, writableFilesystems } from './hard-links.js';
import type { Identity } from './identity.js';
import type { OwnPath } from './own-paths.js';
import { insideOnDisk, mountTable, type MountEntry } from '../core/mount-location.js';
import { isInside } from '../core/paths.js';
import { dependencyClosure, linkedPackages, PACKAGE_PARTS, packageRoot } from '../gate/install-paths.js';

const COMMANDS = { latchgate: 'dist/cli/main.js', 'latchgate-mcp': 'dist/cli/latchgate-mcp.js' };

export interface LatchgateInBox {
  /** The package root and the Node binary (real paths) the commands run. */
  root: string;
  node: string;
  /** Host paths mounted read-only at their own path: Node's installation, then the package's. */
  ro: string[];
  /** The package's paths as found (a part may be a symlink) and as mounted (real). */
  packagePaths: string[];
  /** Where linked dependencies (`file:`, `npm link`) of a clone really are. */
  linked: string[];
  nodeRo: string[];
  /**
   * Every tree the host runs latchgate from (real paths): Node, its
   * installation, the package and its dependencies, also where a system
   * tree holds them and nothing here is mounted.
   */
  runs: string[];
  /** The commands written into /run/latchgate/bin. */
  bin: { name: string; content: string }[];
}

/**
 * gateEnv: the variables that find the box's gate (LATCHGATE_URL...), set by
 * the commands themselves: agents start MCP servers with an environment of
 * their own choosing, which need not carry the box's.
 */
export function latchgateInBox(homes: string[], gateEnv: Record<string, string>, root = packageRoot(), node = process.execPath): LatchgateInBox {
  const nodeReal = realpathSync(node);
  // An installed package's dependencies may be hoisted beside it, among the project's own.
  const installed = basename(dirname(root)) === 'node_modules';
  const linkedHere = installed ? [] : linkedPackages(join(root, 'node_modules'));
  const trees = installed ? dependencyClosure(root) : [...PACKAGE_PARTS.map((p) => join(root, p)).filter((p) => existsSync(p)), ...linkedHere];
  // A system tree is read-only in the box already: nothing of it is mounted.
  const system = inSystemTree(root);
  const packagePaths = system ? [] : trees;
  const linked = system ? [] : linkedHere;
  const nodeRo = installMounts(dirname(node), nodeReal, homes);
  const ro = [...new Set([...nodeRo, ...packagePaths.map((p) => realpathSync(p))])];
  const runs = [...new Set([nodeReal, ...nodeRo, ...trees.map((p) => realpathSync(p))])];
  const vars = Object.entries(gateEnv).map(([k, v]) => `${k}=${shellWord(v)} `).join('');
  const bin = Object.entries(COMMANDS).map(([name, script]) => ({ name, content: `#!/bin/sh\n${vars}exec ${shellWord(nodeReal)} ${shellWord(join(root, script))} "$@"\n` }));
  return { root, node: nodeReal, ro, packagePaths, linked, nodeRo, runs, bin };
}

/**
 * A root launcher runs the agent as another user, who must be able to read
 * the package and run Node, or every gate tool would fail inside the box.
 * Only the mounted trees' own modes count: the box makes their parents.
 */
export function refuseUnreadableInstall(self: LatchgateInBox, id: Pick<Identity, 'hostUid' | 'uid' | 'gid' | 'user'>): void {
  if (id.hostUid !== 0) return;
  const may = (path: string, bit: number) => {
    const st = statSync(path);
    const shift = st.uid === id.uid ? 6 : st.gid === id.gid ? 3 : 0;
    return ((st.mode >> shift) & bit) !== 0;
  };
  const script = join(self.root, COMMANDS['latchgate-mcp']);
  const ok = [self.root, join(self.root, 'dist'), dirname(script)].every((d) => may(d, 1)) && may(script, 4) && may(self.node, 1);
  if (!ok) {
    throw new LaunchError(`the gate's tools need latchgate in the box, but uid ${id.uid} (${id.user}), whom the agent runs as, cannot read ${script} or run ${self.node}; make them readable (chmod -R a+rX ${shellWord(join(self.root, 'dist'))}), or pass --no-gate-tools`);
  }
}

/**
 * The installation as latchgate's own paths (own-paths.ts): the host runs
 * it after the box exits, so where a writable mount holds it, it stays
 * read-only in the box, and a writable mount inside it is refused.
 */
export function installOwnPaths(self: LatchgateInBox): OwnPath[] {
  const entry = (path: string, what: string): OwnPath => ({ path, type: lstatSync(path).isDirectory() ? 'dir' : 'file', what, scan: false });
  const seen = new Set<string>();
  // Node's global folder, searched by every require() that misses: <prefix>/lib/node, prefix two
  // levels above the binary (a read-only placeholder where it is missing inside a writable tree).
  const globalFolder: OwnPath = { path: join(dirname(dirname(self.node)), 'lib', 'node'), type: 'dir', what: 'Node.js global module folder', scan: false };
  // A linked dependency inside the package resolves its own dependencies upwards from where it
  // really is: each node_modules on the way to the package root stays as it is (or absent).
  const lookups: OwnPath[] = self.linked.filter((p) => isInside(self.root, p)).flatMap((p) => {
    const out: OwnPath[] = [];
    for (let d = p; d !== self.root; d = dirname(d)) out.push({ path: join(d, 'node_modules'), type: 'dir', what: 'module folder a linked dependency searches', scan: false });
    return out;
  });
  return [
    entry(self.node, 'Node.js binary (it runs latchgate)'),
    globalFolder,
    ...lookups,
    ...self.nodeRo.map((p) => entry(p, 'Node.js installation (it runs latchgate)')),
    ...[...self.packagePaths, ...self.ro.filter((p) => !self.nodeRo.includes(p))].map((p) => entry(p, 'installation')),
  ].filter((o) => !seen.has(o.path) && !!seen.add(o.path));
}

/**
 * Node looks a module it does not find inside the package up in the
 * node_modules of every directory above it (ESM also in
 * node_modules/node_modules, scope folders, .bin): a box that can write
 * any of those could plant code the host's next `latchgate` loads. So no
 * writable mount may hold, or lie inside, one of those lookup directories:
 * latchgate must be installed outside the box's reach, or be the
 * workspace itself (whose node_modules stays read-only).
 */
export function refuseWritableModulePaths(self: LatchgateInBox, writableRoots: readonly string[], table: readonly MountEntry[] = mountTable()): void {
  for (const from of [self.root, ...self.linked.filter((p) => !isInside(self.root, p))]) refuseAbove(from, self.root, writableRoots, table);
}

/**
 * The installation is read-only by path; a hard link to one of its files
 * from a writable mount would still write it (hard-links.ts). Rejects with
 * the refusal; the launch awaits it before the box runs, unless asked not
 * to by name (--trust-linked-install, recorded).
 */
export async function refuseLinkedInstall(self: LatchgateInBox, writableRoots: readonly string[]): Promise<void> {
  const own = installOwnPaths(self).map((o) => o.path);
  const trees = [...self.runs, ...own].flatMap((p) => {
    try {
      return [realpathSync(p)];
    } catch {
      return []; // absent (a lookup folder that does not exist): nothing there to run
    }
  });
  const files = await aliasableFiles(trees, writableFilesystems(writableRoots));
  refuseAliasedFiles(
    files,
    `latchgate's installation (${self.root}, with the Node.js at ${self.node})`,
    'install latchgate with npm, which copies its files (npm install -g latchgate), or give --workspace and --rw directories on another filesystem; --trust-linked-install runs anyway (recorded as degraded)',
  );
}

/** Each node_modules Node searches above from, checked against the writable roots on disk (another mount of the same directory too). */
function refuseAbove(from: string, root: string, writableRoots: readonly string[], table: readonly MountEntry[]): void {
  for (let dir = dirname(from); ; dir = dirname(dir)) {
    const lookup = join(dir, 'node_modules');
    const w = writableRoots.find((root) => insideOnDisk(root, lookup, table) || insideOnDisk(lookup, root, table));
    if (w !== undefined) {
      const alias = isInside(w, lookup) || isInside(lookup, w) ? '' : ` (${w} shows the same directory through another mount)`;
      throw new LaunchError(`${w}: refused as a writable mount: latchgate runs from ${root}, and Node loads modules it does not find ${from === root ? 'there' : `in its dependency ${from}`} from ${lookup}, which the box could then write${alias}; install latchgate outside the box's reach (npm install -g latchgate) or pass a --workspace that does not hold ${dir}`);
    }
    if (dir === '/') return;
  }
}
