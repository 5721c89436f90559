// An MCP client (the SDK's Client over StdioClientTransport) of a real
// `latchgate mcp serve` child, spawned asynchronously (the gate it talks to
// runs in the test's own event loop), with its stderr, its tools/list_changed
// notifications and its progress notifications collected.
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { BASE_URL } from './gate.mjs';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
export const MCP_BIN = fileURLToPath(new URL('../../dist/cli/latchgate-mcp.js', import.meta.url));

/**
 * Starts `latchgate mcp serve --socket <socket> ...args` and connects a client;
 * closed after the test. Resolves { client, stderr(), listChanged: {count, next()} }.
 */
export async function mcpClient(t, socket, args = [], { command = [CLI, 'mcp', 'serve'], env = {}, viaEnv = false } = {}) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    // viaEnv: the gate named as a box names it, LATCHGATE_URL and LATCHGATE_PUBLIC_URL, no options.
    args: [...command, ...(viaEnv ? [] : ['--socket', socket, '--public-url', BASE_URL]), ...args],
    ...(viaEnv ? { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', LATCHGATE_URL: `unix://${socket}`, LATCHGATE_PUBLIC_URL: BASE_URL, ...env } } : {}),
    ...(viaEnv ? {} : { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...env } }),
    stderr: 'pipe',
  });
  let err = '';
  transport.stderr?.on('data', (d) => (err += d));
  const client = new Client({ name: 'latchgate-test', version: '1.0.0' });
  const changed = { count: 0, waiters: [] };
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
    changed.count++;
    for (const w of changed.waiters.splice(0)) w();
  });
  await client.connect(transport);
  t.after(() => client.close());
  return {
    client,
    transport,
    stderr: () => err,
    listChanged: {
      get count() {
        return changed.count;
      },
      /** Resolves at the next notification after `seen` of them (default: the count now). */
      after(seen = changed.count) {
        return changed.count > seen ? Promise.resolve() : new Promise((r) => changed.waiters.push(r));
      },
    },
  };
}

/** The text of a tool result's text contents, joined. */
export const textOf = (r) => r.content.filter((c) => c.type === 'text').map((c) => c.text).join('\n');
