// Built-in agent profile names. Their full content (hosts, credential routes,
// config mounts) arrives with the egress issue; the names are validated now.
import { LaunchError } from '../sandbox/errors.js';
import { didYouMean } from './suggest.js';

const PROFILES: Record<string, { command: string; aliases: string[] }> = {
  'claude-code': { command: 'claude', aliases: ['claude'] },
  codex: { command: 'codex', aliases: ['openai-codex'] },
  cursor: { command: 'cursor-agent', aliases: [] },
  opencode: { command: 'opencode', aliases: [] },
  aider: { command: 'aider', aliases: [] },
};

export interface ProfileRef {
  name: string;
  command: string;
}

export function profileNames(): string[] {
  return Object.keys(PROFILES);
}

export function resolveProfile(name: string): ProfileRef {
  for (const [canonical, p] of Object.entries(PROFILES)) {
    if (name === canonical || p.aliases.includes(name)) return { name: canonical, command: p.command };
  }
  const all = Object.entries(PROFILES).flatMap(([n, p]) => [n, ...p.aliases]);
  throw new LaunchError(`--profile ${name}: unknown profile; ${didYouMean(name, all)} (available: ${profileNames().join(', ')})`);
}
