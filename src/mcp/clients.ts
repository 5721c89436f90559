// Where each MCP client keeps its server configuration, and the shape of
// latchgate's entry there. Paths come from the environment given (HOME,
// XDG_CONFIG_HOME, CODEX_HOME) and the working directory, so an install can
// be pointed anywhere.
import os from 'node:os';
import path from 'node:path';

export const CLIENTS = ['claude-code', 'codex', 'cursor', 'opencode', 'vscode', 'windsurf', 'cline'] as const;
export type ClientName = (typeof CLIENTS)[number];
export type Scope = 'user' | 'project';

/** The server as a client starts it. */
export interface ServerCommand {
  command: string;
  args: string[];
}

export interface Target {
  client: ClientName;
  scope: Scope;
  file: string;
  format: 'json' | 'toml';
  /** The key of the table of servers (mcpServers, servers, mcp, mcp_servers). */
  key: string;
  /** latchgate's entry under it. */
  entry: Record<string, unknown>;
}

/** The name latchgate's entry has in every client's table. */
export const ENTRY_NAME = 'latchgate';

interface Where {
  env: NodeJS.ProcessEnv;
  cwd: string;
}

const home = (w: Where) => w.env.HOME || os.homedir();
const xdgConfig = (w: Where) => w.env.XDG_CONFIG_HOME || path.join(home(w), '.config');

type Spec = {
  files: Partial<Record<Scope, (w: Where) => string>>;
  format: 'json' | 'toml';
  key: string;
  entry: (c: ServerCommand) => Record<string, unknown>;
};

const plain = (c: ServerCommand) => ({ command: c.command, args: [...c.args] });
const stdio = (c: ServerCommand) => ({ type: 'stdio', command: c.command, args: [...c.args] });

const SPECS: Record<ClientName, Spec> = {
  'claude-code': {
    files: { user: (w) => path.join(home(w), '.claude.json'), project: (w) => path.join(w.cwd, '.mcp.json') },
    format: 'json',
    key: 'mcpServers',
    entry: stdio,
  },
  codex: {
    files: { user: (w) => path.join(w.env.CODEX_HOME || path.join(home(w), '.codex'), 'config.toml') },
    format: 'toml',
    key: 'mcp_servers',
    entry: plain,
  },
  cursor: {
    files: { user: (w) => path.join(home(w), '.cursor', 'mcp.json'), project: (w) => path.join(w.cwd, '.cursor', 'mcp.json') },
    format: 'json',
    key: 'mcpServers',
    entry: plain,
  },
  opencode: {
    files: { user: (w) => path.join(xdgConfig(w), 'opencode', 'opencode.json'), project: (w) => path.join(w.cwd, 'opencode.json') },
    format: 'json',
    key: 'mcp',
    entry: (c) => ({ type: 'local', command: [c.command, ...c.args], enabled: true }),
  },
  vscode: {
    files: { user: (w) => path.join(xdgConfig(w), 'Code', 'User', 'mcp.json'), project: (w) => path.join(w.cwd, '.vscode', 'mcp.json') },
    format: 'json',
    key: 'servers',
    entry: stdio,
  },
  windsurf: {
    files: { user: (w) => path.join(home(w), '.codeium', 'windsurf', 'mcp_config.json') },
    format: 'json',
    key: 'mcpServers',
    entry: plain,
  },
  cline: {
    files: { user: (w) => path.join(xdgConfig(w), 'Code', 'User', 'globalStorage', 'saoudrizwon.claude-dev', 'settings', 'cline_mcp_settings.json') },
    format: 'json',
    key: 'mcpServers',
    entry: plain,
  },
};

/** The scopes a client has, the user's first (the default). */
export const scopesOf = (client: ClientName): Scope[] => (['user', 'project'] as const).filter((s) => SPECS[client].files[s]);

/** Where and what to write for a client; throws naming the scopes it has when it has not this one. */
export function targetFor(client: ClientName, scope: Scope | undefined, server: ServerCommand, w: Where): Target {
  const spec = SPECS[client];
  const s = scope ?? 'user';
  const file = spec.files[s];
  if (!file) throw new Error(`${client} has no ${s}-scope MCP configuration; use --scope ${scopesOf(client).join(' or ')}`);
  return { client, scope: s, file: file(w), format: spec.format, key: spec.key, entry: spec.entry(server) };
}
