// Names in a tree that decide what runs on the host later, outside any box:
// editor, agent and latchgate project settings (directories), shell rc files
// and agent settings (files), and git's repository data. The box keeps them
// read-only at its writable roots (src/sandbox/protected-paths.ts); the fs
// host writes and deletes none of them at any depth (src/providers/host-fs.ts).

/** Directories whose content an editor, agent or latchgate itself uses to decide what runs. */
export const PROTECTED_DIRS = [
  '.vscode', '.idea', '.codex', '.cursor', '.latchgate',
  '.claude/commands', '.claude/agents', '.claude/hooks', '.claude/skills',
];
/** Files run by every shell, or read by agents at start (MCP servers, hooks, permissions). */
export const PROTECTED_FILES = [
  '.bashrc', '.bash_profile', '.bash_login', '.bash_logout', '.zshrc', '.zshenv', '.zprofile', '.zlogin', '.profile',
  '.mcp.json', '.claude/settings.json', '.claude/settings.local.json', 'opencode.json', 'opencode.jsonc',
  '.aider.conf.yml', '.pre-commit-config.yaml',
];
/** What a path (its components, relative to a root) is of those, at any depth; undefined when none. */
export function hostRunsFrom(components: readonly string[]): string | undefined {
  if (components.includes('.git')) return "a git repository's data (its hooks and config run commands)";
  for (let i = 0; i < components.length; i++) {
    const rest = components.slice(i).join('/');
    const dir = PROTECTED_DIRS.find((d) => rest === d || rest.startsWith(`${d}/`));
    if (dir) return `${dir}/ (settings an editor, agent or latchgate reads to decide what runs)`;
    if ((PROTECTED_FILES as readonly string[]).includes(rest)) return `${rest} (run by shells or read by agents at start)`;
  }
  return undefined;
}
