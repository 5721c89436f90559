#!/usr/bin/env node
// Puts the addon at build/Release/latchgate.node, doing as little as it can:
// - nothing when the file there was made from the current sources and loads;
// - else the prebuilt binary the package ships (prebuilds/<platform>-<arch>/,
//   made by `npm pack`'s prepack step) when it was made from the same sources
//   and loads in this Node: the addon uses Node-API only, so one binary serves
//   every Node with N-API 8 (20, 22, 24) and users need no C++ toolchain;
// - else a build from source with node-gyp against the headers of the Node
//   running this (offline where they are installed, e.g. /usr/include/node),
//   quiet unless it fails, and without deleting build/ first, so the CLI keeps
//   working while it compiles.
// Options: --from-source (or npm's --build-from-source) never takes the
// prebuilt binary; --prebuild also copies the fresh build into prebuilds/.
// In a checkout it first regenerates the numbers the addon shares with
// src/native/ (gen-protocol.mjs); a package has them already.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeProtocol } from './gen-protocol.mjs';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const PLATFORM = `${process.platform}-${process.arch}`;
const require = createRequire(import.meta.url);

/** Where the addon lives, its stamp, and where a prebuilt binary for this platform would be. */
export function addonPaths(root = ROOT) {
  const built = join(root, 'build', 'Release', 'latchgate.node');
  const prebuilt = join(root, 'prebuilds', PLATFORM, 'latchgate.node');
  return { built, builtStamp: `${built}.json`, prebuilt, prebuiltStamp: `${prebuilt}.json` };
}

/**
 * What the binary is made from: binding.gyp and native/ (the sources), and
 * the node-addon-api headers it was compiled with. A prebuilt binary is good
 * for the same sources whatever headers the user's install resolved.
 */
export function addonInputs(root = ROOT) {
  const h = createHash('sha256');
  const files = ['binding.gyp', ...readdirSync(join(root, 'native')).sort().map((f) => join('native', f))];
  for (const f of files) h.update(`${f}\n`).update(readFileSync(join(root, f)));
  const napi = JSON.parse(readFileSync(createRequire(join(root, 'package.json')).resolve('node-addon-api/package.json'), 'utf8')).version;
  return { sources: `sha256:${h.digest('hex')}`, nodeAddonApi: napi };
}

function readStamp(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

/** undefined when file loads in this Node (in a child: a bad binary may crash), else why not, in one line. */
export function loadProblem(file) {
  if (!existsSync(file)) return 'missing';
  const r = spawnSync(process.execPath, ['-e', 'require(process.argv[1])', file], { encoding: 'utf8', timeout: 30_000 });
  if (r.status === 0) return undefined;
  const lines = `${r.stderr ?? ''}`.split('\n');
  const error = lines.find((l) => /^\w*Error\b/.test(l));
  return (error ?? (r.signal ? `killed by ${r.signal}` : `exit status ${r.status}`)).trim();
}

/** Compiles build/Release/latchgate.node; returns the output of node-gyp and the compiler, and whether it worked. */
function compile(root) {
  const prefix = resolve(dirname(process.execPath), '..');
  // configure + build, not rebuild: build/ stays, make recompiles what changed.
  const args = ['configure', 'build', '--release', '--jobs=max'];
  if (existsSync(resolve(prefix, 'include/node/node_api.h'))) args.push(`--nodedir=${prefix}`);
  // make copies its link output into Release/ as a hard link, and keeps a file there
  // that is newer: one that is not that link (a prebuilt binary, a damaged file) is linked again.
  const built = addonPaths(root).built;
  const linked = join(dirname(built), 'obj.target', 'latchgate.node');
  if (existsSync(linked) && existsSync(built) && statSync(linked).ino !== statSync(built).ino) rmSync(linked);
  const gyp = require.resolve('node-gyp/bin/node-gyp.js');
  const r = spawnSync(process.execPath, [gyp, ...args], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? `${r.error.message}\n` : ''}` };
}

function place(from, to) {
  mkdirSync(dirname(to), { recursive: true });
  const tmp = `${to}.${process.pid}.tmp`;
  copyFileSync(from, tmp);
  renameSync(tmp, to); // a running latchgate sees the old file or the new one, never half of one
}

/**
 * Makes build/Release/latchgate.node current; returns how: 'fresh',
 * 'prebuilt' or 'source'. Throws with the compiler's output when it cannot.
 */
export function buildAddon({ root = ROOT, fromSource = false, prebuild = false } = {}) {
  if (prebuild && PLATFORM !== 'linux-x64') throw new Error(`build-addon: the package ships a linux-x64 binary; this is ${PLATFORM}`);
  if (existsSync(join(root, 'src', 'native'))) {
    for (const f of writeProtocol(root)) console.log(`build-addon: regenerated ${f}`);
  }
  const p = addonPaths(root);
  const inputs = addonInputs(root);
  const stamp = readStamp(p.builtStamp);
  const fresh = stamp?.sources === inputs.sources && stamp.nodeAddonApi === inputs.nodeAddonApi && (stamp.from === 'source' || !(fromSource || prebuild)) && loadProblem(p.built) === undefined;
  let how;
  if (fresh) {
    how = 'fresh';
  } else if (!fromSource && !prebuild && readStamp(p.prebuiltStamp)?.sources === inputs.sources && loadProblem(p.prebuilt) === undefined) {
    rmSync(p.builtStamp, { force: true });
    place(p.prebuilt, p.built);
    writeFileSync(p.builtStamp, `${JSON.stringify({ ...readStamp(p.prebuiltStamp), from: 'prebuilt' })}\n`);
    how = 'prebuilt';
  } else {
    rmSync(p.builtStamp, { force: true }); // an interrupted build is never taken for a fresh one
    const r = compile(root);
    const problem = r.ok ? loadProblem(p.built) : 'node-gyp failed';
    if (problem !== undefined) {
      throw new Error(`${r.output}\nbuild-addon: could not build ${relative(root, p.built)} from source (${problem}). It needs a C++17 compiler, make and python3 (Debian: apt-get install g++ make python3), and Node's headers (installed with Node, or downloaded by node-gyp)`);
    }
    writeFileSync(p.builtStamp, `${JSON.stringify({ ...inputs, from: 'source', node: process.version })}\n`);
    how = 'source';
  }
  if (prebuild) {
    rmSync(dirname(p.prebuilt), { recursive: true, force: true });
    place(p.built, p.prebuilt);
    writeFileSync(p.prebuiltStamp, `${JSON.stringify({ ...inputs, node: process.version })}\n`);
  }
  return how;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = process.argv.slice(2);
  const fromSource = args.includes('--from-source') || /^(true|1)$/.test(process.env.npm_config_build_from_source ?? '');
  const prebuild = args.includes('--prebuild');
  const started = Date.now();
  try {
    const how = buildAddon({ fromSource, prebuild });
    const what = relative(ROOT, addonPaths().built);
    const said = { fresh: `${what} is up to date`, prebuilt: `${what}: the prebuilt ${PLATFORM} binary loads in Node ${process.version}`, source: `built ${what} from source in ${((Date.now() - started) / 1000).toFixed(0)} s` };
    console.log(`build-addon: ${said[how]}${prebuild ? `; copied into ${relative(ROOT, dirname(addonPaths().prebuilt))}/` : ''}`);
  } catch (e) {
    console.error(e.message);
    process.exit(1);
  }
}
