// `latchgate up`: the gate as a standalone server on a client socket and an
// admin socket (and, if asked, loopback HTTP for callers with client
// tokens). Never waits on a prompt.
import { Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import { LaunchError } from '../core/errors.js';
import { gateSetup, openSharedGate, operatorsByUid } from '../gate/setup.js';
import { EXIT_GATE_RUNNING, lockUp } from '../gate/up-lock.js';

export function upCommand(): Command {
  return new Command('up')
    .summary('run the gate: client and admin sockets')
    .description(
      'Serve the gate on $XDG_RUNTIME_DIR/latchgate/gate.sock (clients) and gate-admin.sock (operators), with the ledger and keys under $XDG_STATE_HOME/latchgate. Works on first run with safe defaults: you are the only principal and operator.\n\n' +
        'Without XDG_RUNTIME_DIR the sockets go in /tmp/latchgate-<uid>, made mode 0700; an existing one is used only when it is a real directory (not a symlink) owned by you that no one else can enter, refused otherwise (exit 125). ' +
        'One `up` serves a runtime directory and a state directory: a second one is refused, naming the first\'s pid and socket; a gate that died (even by kill -9) leaves nothing that blocks the next.',
    )
    .addHelpText(
      'after',
      [
        '',
        'Exit status:',
        '  0    stopped by SIGINT or SIGTERM',
        "  1    refused to serve: the ledger's chain shows state changed outside latchgate",
        `  ${EXIT_GATE_RUNNING}    a gate is already running on the same runtime or state directory`,
        '       (the message names its pid and socket)',
        '  125  any other launcher error (bad option, an unsafe runtime directory)',
      ].join('\n'),
    )
    .option('--config <file>', 'latchgate.toml')
    .option('--expose-http <addr>', 'also serve clients on this loopback address (e.g. 127.0.0.1:8080); they are identified by client tokens (latchgate tokens create)')
    .option('--non-interactive', 'never prompt (the default when stdin is not a terminal)')
    .option('--json', 'print a JSON line when ready')
    .action(async (o: { config?: string; exposeHttp?: string; json?: boolean }) => {
      const s = gateSetup(o.config);
      // Before anything is opened or bound: a second gate must not unlink the first one's sockets.
      lockUp([s.runtimeDir, s.stateDir], { pid: process.pid, client_socket: s.clientSocket, admin_socket: s.adminSocket, state_dir: s.stateDir });
      const [{ buildGateApp }, { listenUnix, parseLoopbackAddress, tcpHosts, tokenIdentity, tokenPeer, unixIdentity, unixPeer }] = await Promise.all([import('../gate/app.js'), import('../gate/transport.js')]);
      const opened = await openSharedGate(s, 'up');
      if (opened.tampered.length) {
        // Fail closed: a gate whose epoch or policy data differs from the chain serves nothing.
        opened.close();
        throw new LaunchError(`refusing to serve: state the ledger's chain records was changed outside latchgate.\n${opened.tampered.map((m) => `  ${m.message}`).join('\n')}`, 1);
      }
      const identity = unixIdentity({ principals: s.gate.principals, operators: operatorsByUid(s.gate) });
      const client = buildGateApp({ service: opened.gate, role: 'client', identify: identity, peer: unixPeer });
      const admin = buildGateApp({ service: opened.gate, role: 'admin', identify: identity, peer: unixPeer });
      // Peer uids decide who may do what, so the sockets themselves are open to local users.
      await listenUnix(client, s.clientSocket, 0o666);
      await listenUnix(admin, s.adminSocket, 0o666);
      let http: FastifyInstance | undefined;
      const exposed = o.exposeHttp ?? s.gate.exposeHttp;
      if (exposed) {
        const listen = parseLoopbackAddress(exposed);
        // No peer uid over TCP: callers are who their client token says, never the owner.
        const identify = tokenIdentity({
          hosts: tcpHosts(listen, s.gate.httpHosts),
          origins: new Set(s.gate.httpOrigins.map((o) => o.toLowerCase())),
          tokens: opened.ctx.tokens,
        });
        http = buildGateApp({ service: opened.gate, role: 'client', identify, identifyEveryRequest: true, peer: () => 'http', prove: tokenPeer(opened.ctx.tokens) });
        await http.listen(listen);
      }
      const stop = async () => {
        await Promise.allSettled([client.close(), admin.close(), http?.close()]);
        await opened.finalCheckpoint();
        opened.close();
        process.exit(0);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      // Ready is said only once a stop signal is handled: whoever waits for the line may stop the gate at once.
      const info = { status: 'ready', client_socket: s.clientSocket, admin_socket: s.adminSocket, state_dir: s.stateDir, http: exposed ?? null, actions: opened.ctx.registry.list().length, policy_engine: opened.ctx.policy.kind, secrets: opened.secretSources };
      process.stdout.write(o.json ? JSON.stringify(info) + '\n' : `latchgate gate ready: ${info.actions} actions, clients on ${s.clientSocket}, operators on ${s.adminSocket}${exposed ? `, http on ${exposed}` : ''}; ledger in ${s.stateDir}; secrets from ${info.secrets}\n`);
    });
}
