// The gate under benchmark, in its own process: the real factory, Cedar,
// SQLite (synchronous=FULL) and a Unix socket; prints the socket path.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openGate } from '../dist/gate/factory.js';
import { buildGateApp } from '../dist/gate/app.js';
import { listenUnix, unixIdentity, unixPeer } from '../dist/gate/transport.js';

const stateDir = process.argv[2];
const uid = process.getuid();
const config = {
  manifestDirs: [fileURLToPath(new URL('./fixtures', import.meta.url))],
  principals: new Map([[uid, { name: 'bench', scopes: ['tools:call'] }]]),
  operators: new Map(),
  policy: {},
  // One uid drives the whole benchmark: the per-peer limits would measure themselves.
  requestsPerSecond: 1_000_000,
  requestBurst: 1_000_000,
  maxConnectionsPerPeer: 10_000,
};
const g = await openGate({ stateDir, config });
// The change and its chained event together, as the admin act makes them.
g.ctx.policyData.change(() => g.ctx.policyStore.grant('bench', ['t_noop'], [], {}, (c) => g.ctx.ledger.append({ event_type: c.event_type, decision: 'allow', operator: { name: 'bench', uid }, subject: { principal: 'bench' }, details: { ...c.details } })));
const app = buildGateApp({ service: g.gate, role: 'client', identify: unixIdentity({ principals: config.principals, operators: new Map() }), peer: unixPeer });
const sock = path.join(mkdtempSync(path.join(os.tmpdir(), 'latchgate-bench-sock-')), 'gate.sock');
await listenUnix(app, sock, 0o600);
process.stdout.write(sock + '\n');
process.on('SIGTERM', async () => {
  await app.close();
  g.close();
  process.exit(0);
});
