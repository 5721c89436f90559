// The box's environment: cleared, then a short allowlist from the host, what
// --pass-env names, and what latchgate sets. Names that would subvert the box
// or point at host services are refused when asked for, never passed quietly.
import { LaunchError } from '../core/errors.js';

export const BOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The prompt of a shell in the box, unless --pass-env PS1 asks for the host's:
 * it says where the shell is. sh (dash) and bash both expand $USER and $PWD
 * in it and read "\$" as "$" ("#" for root, never the case here); the box's
 * /etc has no bash.bashrc and its HOME no .bashrc to override it (a home
 * workspace's own .bashrc may, and stays read-only).
 */
export const BOX_PS1 = '[latchgate] $USER@latchgate:$PWD\\$ ';

const ALWAYS_PASSED = ['TERM', 'LANG', 'COLORTERM'];

/** Set by latchgate itself; passing them would be ambiguous. */
const RESERVED = new Set(['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'PWD']);

/** Why each refused name is refused; matched exactly or by the prefix rule below. */
const REFUSED: Record<string, string> = {
  LD_PRELOAD: 'it injects code into every program in the box',
  LD_LIBRARY_PATH: 'it redirects every dynamic library lookup',
  LD_AUDIT: 'it injects code into every program in the box',
  BASH_ENV: 'it makes every non-interactive bash run a file',
  ENV: 'it makes every sh run a file',
  PROMPT_COMMAND: 'it runs a command at every shell prompt',
  NODE_OPTIONS: 'it can preload code into every Node program (the agent itself)',
  PYTHONSTARTUP: 'it runs a file in every interactive Python',
  PERL5OPT: 'it injects options into every Perl program',
  SSH_AUTH_SOCK: 'it names the host ssh-agent socket, which the box must not reach',
  GPG_AGENT_INFO: 'it names the host gpg-agent socket',
  DOCKER_HOST: 'it names the host Docker daemon, which is root on the host',
  CONTAINER_HOST: 'it names the host Podman service',
  DBUS_SESSION_BUS_ADDRESS: 'it names the host D-Bus session bus',
  DBUS_SYSTEM_BUS_ADDRESS: 'it names the host D-Bus system bus',
  XDG_RUNTIME_DIR: 'it names the host runtime directory with its sockets',
  DISPLAY: 'it names the host X11 display',
  WAYLAND_DISPLAY: 'it names the host Wayland compositor',
  XAUTHORITY: 'it names the host X11 credentials',
  GIT_SSH_COMMAND: 'it makes git run a command of its choice',
  GIT_EXEC_PATH: 'it makes git run programs from another directory',
  GIT_CONFIG_GLOBAL: 'it points git at another configuration',
  GIT_DIR: 'it points git at another repository',
  HTTPS_PROXY: 'latchgate points it at its egress proxy',
  HTTP_PROXY: 'latchgate points it at its egress proxy',
  https_proxy: 'latchgate points it at its egress proxy',
  http_proxy: 'latchgate points it at its egress proxy',
  ALL_PROXY: 'it would route around the egress proxy',
  all_proxy: 'it would route around the egress proxy',
  NO_PROXY: 'latchgate sets it so local base URLs stay local',
  no_proxy: 'latchgate sets it so local base URLs stay local',
};

const REFUSED_PREFIXES: [string, string][] = [
  ['LD_', 'the dynamic loader obeys LD_* variables'],
  ['BASH_FUNC_', 'it defines bash functions in every bash'],
  ['LATCHGATE_', 'LATCHGATE_* variables are set by latchgate'],
  ['SOPS_AGE_', 'it holds or names the age key that opens every secret'],
  ['GIT_CONFIG', 'it injects git configuration (which can run commands)'],
];

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function refusalReason(name: string): string | undefined {
  if (RESERVED.has(name)) return `${name} is set by latchgate inside the box`;
  const exact = REFUSED[name];
  if (exact) return exact;
  for (const [prefix, why] of REFUSED_PREFIXES) if (name.startsWith(prefix)) return why;
  return undefined;
}

export function validatePassEnv(names: readonly string[], source = '--pass-env'): void {
  for (const name of names) {
    if (!NAME.test(name)) {
      throw new LaunchError(`${source} ${JSON.stringify(name)}: expected a variable name (letters, digits, _; no '='), e.g. ${source} MY_TOKEN`);
    }
    const why = refusalReason(name);
    if (why) throw new LaunchError(`${source} ${name}: refused, ${why}; remove it from ${source}`);
  }
}

export interface BoxEnvInput {
  hostEnv: NodeJS.ProcessEnv;
  passEnv: readonly string[];
  user: string;
  home: string;
  shell: string;
  workspace: string;
  extraPath: readonly string[];
}

export function buildBoxEnv(i: BoxEnvInput): Record<string, string> {
  validatePassEnv(i.passEnv);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(i.hostEnv)) {
    if (v === undefined) continue;
    if (ALWAYS_PASSED.includes(k) || k.startsWith('LC_') || i.passEnv.includes(k)) env[k] = v;
  }
  env.PATH = [BOX_PATH, ...i.extraPath].join(':');
  env.HOME = i.home;
  env.USER = i.user;
  env.LOGNAME = i.user;
  env.SHELL = i.shell;
  if (!i.passEnv.includes('PS1')) env.PS1 = BOX_PS1;
  env.LATCHGATE_SANDBOX = '1';
  // For prompts and scripts that ask whether they run in a box.
  env.LATCHGATE_BOX = '1';
  env.LATCHGATE_WORKSPACE = i.workspace;
  return env;
}
