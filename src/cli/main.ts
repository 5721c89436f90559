#!/usr/bin/env node
// The latchgate command line: one file per command group, each imported only
// when its command runs (or for the full help): a command starts without
// loading the modules of the others (the gate, the sandbox, the secrets
// formats), which is most of a run's start-up time.
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
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

/** The commands in the order the help lists them, each with how to make it. */
const COMMANDS: readonly (readonly [string, () => Promise<Command>])[] = [
  ['sandbox', async () => (await import('./sandbox.js')).sandboxCommand().passThroughOptions()],
  ['profiles', async () => (await import('./sandbox.js')).profilesCommand()],
  ['trust', async () => (await import('./trust.js')).trustCommand()],
  ['up', async () => (await import('./up.js')).upCommand()],
  ['status', async () => (await import('./gate-commands.js')).statusCommand()],
  ['doctor', async () => (await import('./doctor.js')).doctorCommand()],
  ['actions', async () => (await import('./gate-commands.js')).actionsCommand()],
  ['audit', async () => (await import('./gate-commands.js')).auditCommand()],
  ['verify', async () => (await import('./gate-commands.js')).verifyCommand()],
  ['checkpoint', async () => (await import('./checkpoint.js')).checkpointCommand()],
  ['revoke', async () => (await import('./gate-commands.js')).revokeCommand()],
  ['reload', async () => (await import('./gate-commands.js')).reloadCommand()],
  ['approvals', async () => (await import('./gate-commands.js')).approvalsCommand()],
  ['policy', async () => (await import('./gate-commands.js')).policyCommand()],
  ['keys', async () => (await import('./gate-commands.js')).keysCommand()],
  ['tokens', async () => (await import('./tokens.js')).tokensCommand()],
  ['providers', async () => (await import('./providers.js')).providersCommand()],
  ['mcp', async () => (await import('./mcp.js')).mcpCommand()],
  ['secrets', async () => (await import('./secrets.js')).secretsCommand()],
  ['receipts', async () => (await import('./receipts.js')).receiptsCommand()],
];
// The command named first (no option of the program takes a value); none for the version alone; all of them
// for the help, `help X`, an unknown name (commander's suggestion needs them) or none.
const args = process.argv.slice(2);
const named = args.find((a) => !a.startsWith('-'));
const versionOnly = !named && args.some((a) => a === '-V' || a === '--version') && !args.some((a) => a === '-h' || a === '--help');
const chosen = versionOnly ? [] : COMMANDS.filter(([name]) => name === named);
const commands = await Promise.all((chosen.length || versionOnly ? chosen : COMMANDS).map(([, make]) => make()));
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
