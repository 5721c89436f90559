// `latchgate up`: the gate as a standalone server on a client socket and an
// admin socket (and, if asked, loopback HTTP). Never waits on a prompt.
import { Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import { gateSetup, openSharedGate, operatorsByUid } from '../gate/setup.js';

export function upCommand(): Command {
  return new Command('up')
    .summary('run the gate: client and admin sockets')
    .description('Serve the gate on $XDG_RUNTIME_DIR/latchgate/gate.sock (clients) and gate-admin.sock (operators), with the ledger and keys under $XDG_STATE_HOME/latchgate. Works on first run with safe defaults: you are the only principal and operator.')
    .option('--config <file>', 'latchgate.toml')
    .option('--expose-http <addr>', 'also serve clients on this loopback address (e.g. 127.0.0.1:8080)')
    .option('--non-interactive', 'never prompt (the default when stdin is not a terminal)')
    .option('--json', 'print a JSON line when ready')
    .action(async (o: { config?: string; exposeHttp?: string; json?: boolean }) => {
      const s = gateSetup(o.config);
      const [{ buildGateApp }, { httpIdentity, listenUnix, parseLoopbackAddress, unixIdentity }] = await Promise.all([import('../gate/app.js'), import('../gate/transport.js')]);
      const opened = await openSharedGate(s, 'up');
      const identity = unixIdentity({ principals: s.gate.principals, operators: operatorsByUid(s.gate) });
      const client = buildGateApp({ service: opened.gate, role: 'client', identify: identity });
      const admin = buildGateApp({ service: opened.gate, role: 'admin', identify: identity });
      // Peer uids decide who may do what, so the sockets themselves are open to local users.
      await listenUnix(client, s.clientSocket, 0o666);
      await listenUnix(admin, s.adminSocket, 0o666);
      let http: FastifyInstance | undefined;
      const exposed = o.exposeHttp ?? s.gate.exposeHttp;
      if (exposed) {
        const { host, port } = parseLoopbackAddress(exposed);
        const owner = s.gate.principals.get(process.getuid!())!;
        http = buildGateApp({ service: opened.gate, role: 'client', identify: httpIdentity(owner) });
        await http.listen({ host, port });
      }
      const info = { status: 'ready', client_socket: s.clientSocket, admin_socket: s.adminSocket, state_dir: s.stateDir, http: exposed ?? null, actions: opened.ctx.registry.list().length, policy_engine: opened.ctx.policy.kind };
      process.stdout.write(o.json ? JSON.stringify(info) + '\n' : `latchgate gate ready: ${info.actions} actions, clients on ${s.clientSocket}, operators on ${s.adminSocket}${exposed ? `, http on ${exposed}` : ''}; ledger in ${s.stateDir}\n`);
      const stop = async () => {
        await Promise.allSettled([client.close(), admin.close(), http?.close()]);
        opened.close();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
