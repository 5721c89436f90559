#!/usr/bin/env node
// Builds the addon with node-gyp against the headers of the Node running it,
// so no network is needed when they are installed (Debian: /usr/include/node).
// First regenerates the numbers the addon shares with src/native/ (gen-protocol.mjs).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import { writeProtocol } from './gen-protocol.mjs';

for (const f of writeProtocol()) console.log(`build-addon: regenerated ${f}`);
const prefix = resolve(dirname(process.execPath), '..');
const args = ['rebuild', '--release', `--jobs=max`];
if (existsSync(resolve(prefix, 'include/node/node_api.h'))) args.push(`--nodedir=${prefix}`);
const gyp = createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js');
const r = spawnSync(process.execPath, [gyp, ...args], { stdio: 'inherit' });
process.exit(r.status ?? 1);
