#!/usr/bin/env node
// The latchgate command line: one file per command group.
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { doctorCommand } from './doctor.js';
import { profilesCommand, sandboxCommand } from './sandbox.js';
import { trustCommand } from './trust.js';
import { tokensCommand } from './tokens.js';
import { providersCommand } from './providers.js';
import { upCommand } from './up.js';
import { mcpCommand } from './mcp.js';
import { secretsCommand } from './secrets.js';
import { checkpointCommand } from './checkpoint.js';
import { receiptsCommand } from './receipts.js';
import { actionsCommand, approvalsCommand, auditCommand, keysCommand, policyCommand, reloadCommand, revokeCommand, statusCommand, verifyCommand } from './gate-commands.js';
import { LaunchError, EXIT_LAUNCHER } from '../core/errors.js';
import { loadAddon } from '../native/addon.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('latchgate')
  .description('Execution security kernel for AI agents: run them in a box whose only exits latchgate serves and records.')
  .version(pkg.version)
  .enablePositionalOptions();

const sandbox = sandboxCommand().passThroughOptions();
const commands = [sandbox, profilesCommand(), trustCommand(), upCommand(), statusCommand(), doctorCommand(), actionsCommand(), auditCommand(), verifyCommand(), checkpointCommand(), revokeCommand(), reloadCommand(), approvalsCommand(), policyCommand(), keysCommand(), tokensCommand(), providersCommand(), mcpCommand(), secretsCommand(), receiptsCommand()];
const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
for (const cmd of [program, ...commands.flatMap(all)]) {
  // Usage errors are launcher errors: 125, so they never look like the agent's exit code.
  cmd.exitOverride();
  // One line: the problem, commander's suggestion if any, and where the options are.
  const fullName = (c: Command): string => (c.parent ? `${fullName(c.parent)} ${c.name()}` : c.name());
  cmd.configureOutput({
    outputError: (msg, write) => write(`latchgate: ${msg.replace(/^error: /, '').trim().replace(/\s*\n\s*/g, ' ')}; see \`${fullName(cmd)} --help\`\n`),
  });
}
for (const cmd of commands) program.addCommand(cmd);
// A missing or broken addon is said up front, in one line with its fix, whatever
// the command. Doctor reports it among its checks; the MCP server (here and as
// latchgate-mcp) never loads it: its calls go through the gate's socket, and
// agents wait for its first answer.
program.hook('preAction', (_program, action) => {
  if (action.name() !== 'doctor' && !(action.name() === 'serve' && action.parent?.name() === 'mcp')) loadAddon();
});

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) {
    const ok = e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help';
    process.exitCode = ok ? 0 : EXIT_LAUNCHER;
  } else if (e instanceof LaunchError) {
    process.stderr.write(`latchgate: ${e.message}\n`);
    process.exitCode = e.exitCode;
  } else {
    throw e;
  }
}
