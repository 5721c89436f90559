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
import { asLaunchError, EXIT_LAUNCHER } from '../core/errors.js';
import { loadAddon } from '../native/addon.js';

// A reader that went away (`latchgate profiles | head`): stop quietly with the status of a program killed by
// SIGPIPE (128 + 13), as git and coreutils do, instead of a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
    process.exit(141);
  });
}

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('latchgate')
  .description('Execution security kernel for AI agents: run them in a box whose only exits latchgate serves and records.')
  .version(pkg.version)
  .enablePositionalOptions()
  .addHelpText(
    'after',
    [
      '',
      'Files:',
      '  $XDG_CONFIG_HOME/latchgate   configuration (latchgate.toml)',
      '  $XDG_STATE_HOME/latchgate    the ledger and keys',
      "  $XDG_RUNTIME_DIR/latchgate   the gate's sockets; without XDG_RUNTIME_DIR,",
      '                               /tmp/latchgate-<uid>, made mode 0700 and refused',
      "                               (exit 125) when it is a symlink, another user's,",
      '                               or open to others',
      '',
      'Exit status:',
      '  0    done',
      '  1    no command given (this help, on stderr, as git does; --help prints it',
      '       on stdout and exits 0); the same for a command group without its subcommand',
      '  125  a usage error, or latchgate itself failed',
      "  a command's own codes are in its --help (sandbox: the command's status)",
    ].join('\n'),
  );

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
    // Help asked for, and the version: 0. Help because a command was missing: 1 (commander's code for it), as git does.
    const ok = e.code === 'commander.helpDisplayed' || e.code === 'commander.version';
    process.exitCode = ok ? 0 : e.code === 'commander.help' ? e.exitCode : EXIT_LAUNCHER;
  } else {
    const l = asLaunchError(e);
    process.stderr.write(`latchgate: ${l.message}\n`);
    process.exitCode = l.exitCode;
  }
}
