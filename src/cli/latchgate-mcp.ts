#!/usr/bin/env node
// The `latchgate-mcp` bin: `latchgate-mcp` and `latchgate-mcp serve` both run
// what `latchgate mcp serve` runs (src/cli/mcp.ts), for MCP clients that
// want a command of its own.
import { CommanderError } from 'commander';
import { EXIT_LAUNCHER, LaunchError } from '../core/errors.js';
import { serveCommand } from './mcp.js';

const argv = process.argv.slice();
if (argv[2] === 'serve') argv.splice(2, 1);
const program = serveCommand('latchgate-mcp').usage('[serve] [options]').exitOverride();
program.configureOutput({ outputError: (msg, write) => write(`latchgate-mcp: ${msg.replace(/^error: /, '').trim()}; see \`latchgate-mcp --help\`\n`) });

try {
  await program.parseAsync(argv);
} catch (e) {
  if (e instanceof CommanderError) {
    process.exitCode = e.code === 'commander.helpDisplayed' || e.code === 'commander.help' ? 0 : EXIT_LAUNCHER;
  } else if (e instanceof LaunchError) {
    process.stderr.write(`latchgate-mcp: ${e.message}\n`);
    process.exitCode = e.exitCode;
  } else {
    throw e;
  }
}
