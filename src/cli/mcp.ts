// `latchgate mcp`: the gate's actions as tools of an MCP client. `serve` is
// the stdio server (src/mcp/server.ts; the `latchgate-mcp` bin runs the same),
// `install` writes a client's configuration to start it (src/mcp/install.ts).
import { Command, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { LaunchError } from '../core/errors.js';
import { CLIENTS, scopesOf, targetFor, type ClientName, type Scope } from '../mcp/clients.js';
import { applyInstall } from '../mcp/install.js';
import { LatchGateClient, type LatchGateClientOptions } from '../sdk/index.js';
import { displayLines } from './safe-text.js';

interface ServeOpts {
  socket?: string;
  url?: string;
  publicUrl?: string;
  waitApproval: number;
  agentId?: string;
  refresh: number;
}

const seconds = (max: number) => (v: string) => {
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !Number.isFinite(n) || n > max) throw new InvalidArgumentError(`expected a number of seconds from 0 to ${max}`);
  return n;
};

const DEFAULT_REFRESH = 5;

/** The options `serve` takes (and `install` writes into the client's command). */
function serveOptions(c: Command): Command {
  return c
    .option('--socket <path>', "the gate's Unix socket (default: LATCHGATE_URL, then LATCHGATE_SOCKET, then the socket `latchgate up` serves for this user)")
    .option('--url <url>', 'the gate as unix:///path or http(s)://host:port (instead of --socket)')
    .option('--public-url <url>', "the gate's public base URL that DPoP proofs name (default: LATCHGATE_PUBLIC_URL, else http://latchgate.local)")
    .addOption(new Option('--wait-approval <seconds>', 'how long a call that needs an approval waits for it, with progress notifications (0: answer at once with the approval id)').argParser(seconds(86_400)).default(0))
    .option('--agent-id <name>', 'the name this agent gives itself (default: LATCHGATE_AGENT_ID, else a random one)')
    .addOption(new Option('--refresh <seconds>', "how often the tool list is read again while a client is connected (a policy change is announced with tools/list_changed)").argParser(seconds(3600)).default(DEFAULT_REFRESH));
}

function clientOptions(o: ServeOpts): LatchGateClientOptions {
  if (o.socket !== undefined && o.url !== undefined) throw new LaunchError('give --socket or --url, not both');
  const c: LatchGateClientOptions = {
    ...(o.socket !== undefined ? { socket: o.socket } : {}),
    ...(o.url !== undefined ? { baseUrl: o.url } : {}),
    ...(o.publicUrl !== undefined ? { publicBaseUrl: o.publicUrl } : {}),
    ...(o.agentId !== undefined ? { agentId: o.agentId } : {}),
  };
  try {
    new LatchGateClient(c).close(); // the options checked now, not at the first call
  } catch (e) {
    // The SDK names its options; here they are flags.
    throw new LaunchError((e as Error).message.replace(/^baseUrl\b/, '--url').replace(/^publicBaseUrl\b/, '--public-url').replace(/^socket\b/, '--socket'));
  }
  return c;
}

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** Runs the stdio server until the client closes it. */
export async function runServe(o: ServeOpts): Promise<void> {
  if (o.refresh <= 0) throw new LaunchError('--refresh: expected more than 0 seconds');
  // Loaded here, not with the CLI: the MCP SDK is for this command only.
  const { serveStdio } = await import('../mcp/server.js');
  await serveStdio({ client: clientOptions(o), waitApprovalSeconds: o.waitApproval, refreshSeconds: o.refresh, version: VERSION });
}

const SERVE_HELP = `
Speaks MCP on stdin/stdout (nothing else is written to stdout; diagnostics go to stderr).
Each action this principal may call is a tool: its request schema is the input schema,
its risk and side effects are the description and annotations. A call that needs an
approval answers with the approval id and \`latchgate approvals approve <id>\`, or, with
--wait-approval, waits for the operator's decision.

Inside \`latchgate sandbox\` the box's LATCHGATE_URL (unix:///run/latchgate/gate.sock) is the default.`;

export function serveCommand(name = 'serve'): Command {
  return serveOptions(new Command(name).summary('serve the gate\'s actions as MCP tools on stdio').description('Serve the gate\'s actions as MCP tools on stdio.'))
    .addHelpText('after', SERVE_HELP)
    .action(async (o: ServeOpts) => runServe(o));
}

interface InstallOpts extends Partial<ServeOpts> {
  client: ClientName;
  scope?: Scope;
  dryRun?: boolean;
  remove?: boolean;
}

/** The command a client starts: this node and this CLI by absolute path, so PATH does not matter. */
function serverArgs(o: InstallOpts): string[] {
  const args = [fileURLToPath(new URL('./main.js', import.meta.url)), 'mcp', 'serve'];
  if (o.socket !== undefined) args.push('--socket', o.socket);
  if (o.url !== undefined) args.push('--url', o.url);
  if (o.publicUrl !== undefined) args.push('--public-url', o.publicUrl);
  if (o.waitApproval) args.push('--wait-approval', String(o.waitApproval));
  if (o.agentId !== undefined) args.push('--agent-id', o.agentId);
  if (o.refresh !== undefined && o.refresh !== DEFAULT_REFRESH) args.push('--refresh', String(o.refresh));
  return args;
}

function install(o: InstallOpts): void {
  if (o.socket !== undefined && o.url !== undefined) throw new LaunchError('give --socket or --url, not both');
  let target;
  try {
    target = targetFor(o.client, o.scope, { command: process.execPath, args: serverArgs(o) }, { env: process.env, cwd: process.cwd() });
  } catch (e) {
    throw new LaunchError((e as Error).message);
  }
  const r = applyInstall(target, { remove: o.remove === true, dryRun: o.dryRun === true });
  const verb: Record<typeof r.outcome, [string, string]> = {
    created: ['created', 'would create'],
    updated: ['updated', 'would update'],
    removed: ['removed the latchgate entry from', 'would remove the latchgate entry from'],
    unchanged: ['no change: the latchgate entry is already in', 'no change: the latchgate entry is already in'],
    absent: ['no change: there is no latchgate entry in', 'no change: there is no latchgate entry in'],
  };
  const lines = [`${target.client} (${target.scope} scope): ${verb[r.outcome][o.dryRun ? 1 : 0]} ${target.file}${o.dryRun && r.outcome !== 'unchanged' && r.outcome !== 'absent' ? ' (dry run: nothing written)' : ''}`];
  if (r.diff) lines.push(r.diff);
  if (r.written && !o.remove) lines.push(`Restart ${target.client} (or reload its MCP servers) to pick it up; the gate must be running (latchgate up).`);
  process.stdout.write(`${displayLines(lines.join('\n'))}\n`);
}

const INSTALL_HELP = `
Config files (HOME, XDG_CONFIG_HOME and CODEX_HOME are honoured):
  claude-code  user: ~/.claude.json   project: ./.mcp.json                  (mcpServers)
  codex        user: $CODEX_HOME/config.toml (~/.codex/config.toml)         ([mcp_servers.latchgate])
  cursor       user: ~/.cursor/mcp.json   project: ./.cursor/mcp.json       (mcpServers)
  opencode     user: ~/.config/opencode/opencode.json   project: ./opencode.json   (mcp)
  vscode       user: ~/.config/Code/User/mcp.json   project: ./.vscode/mcp.json    (servers)
  windsurf     user: ~/.codeium/windsurf/mcp_config.json                    (mcpServers)
  cline        user: ~/.config/Code/User/globalStorage/saoudrizwon.claude-dev/settings/cline_mcp_settings.json

Only the "latchgate" entry is written or removed; every other server and setting is kept.
A file that does not parse is refused and left as it is. The entry starts this node and
this latchgate by absolute path; --socket, --url, --public-url, --wait-approval,
--agent-id and --refresh are passed on to \`latchgate mcp serve\`.`;

export function mcpCommand(): Command {
  const c = new Command('mcp').summary('the gate\'s actions as MCP tools: serve them, install them in an MCP client');
  c.addCommand(serveCommand());
  c.addCommand(
    serveOptions(new Command('install').summary('add (or --remove) latchgate in an MCP client\'s configuration'))
      .addOption(new Option('--client <name>', 'the MCP client').choices([...CLIENTS]).makeOptionMandatory())
      .addOption(new Option('--scope <scope>', 'user (the default) or project (a file in the current directory)').choices(['user', 'project']))
      .option('--dry-run', 'show the change, write nothing')
      .option('--remove', 'remove the latchgate entry (nothing else)')
      .addHelpText('after', INSTALL_HELP)
      .action((o: InstallOpts) => {
        if (o.scope && !scopesOf(o.client).includes(o.scope)) throw new LaunchError(`${o.client} has no ${o.scope}-scope MCP configuration; use --scope ${scopesOf(o.client).join(' or ')}`);
        install(o);
      }),
  );
  return c;
}
