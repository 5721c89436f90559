// The box's environment: an allowlist, never the host's secrets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BOX_PATH, BOX_PS1, buildBoxEnv, refusalReason, validatePassEnv } from '../../dist/sandbox/env.js';
import { LaunchError } from '../../dist/core/errors.js';
import { assertLaunchError } from '../fixtures/unit/helpers.mjs';

const HOST_ENV = {
  TERM: 'xterm-256color',
  LANG: 'en_US.UTF-8',
  LC_ALL: 'C.UTF-8',
  LC_TIME: 'de_DE.UTF-8',
  COLORTERM: 'truecolor',
  PATH: '/home/alice/bin:/usr/bin',
  HOME: '/home/alice',
  USER: 'alice',
  LOGNAME: 'alice',
  SHELL: '/bin/zsh',
  PWD: '/home/alice/project',
  AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI',
  AWS_ACCESS_KEY_ID: 'AKIA',
  SSH_AUTH_SOCK: '/run/user/1000/ssh-agent',
  GITHUB_TOKEN: 'ghp_x',
  OPENAI_API_KEY: 'sk-x',
  MY_TOKEN: 'mine',
  LD_PRELOAD: '/evil.so',
  DOCKER_HOST: 'unix:///var/run/docker.sock',
  LATCHGATE_SANDBOX: '0',
  EDITOR: 'vim',
  UNSET: undefined,
};

const input = (over = {}) => ({
  hostEnv: HOST_ENV,
  passEnv: [],
  user: 'alice',
  home: '/home/alice',
  shell: '/bin/bash',
  workspace: '/home/alice/project',
  extraPath: [],
  ...over,
});

test('keeps TERM, LANG, LC_* and COLORTERM, sets its own variables, drops the rest', () => {
  assert.deepEqual(buildBoxEnv(input()), {
    TERM: 'xterm-256color',
    LANG: 'en_US.UTF-8',
    LC_ALL: 'C.UTF-8',
    LC_TIME: 'de_DE.UTF-8',
    COLORTERM: 'truecolor',
    PATH: BOX_PATH,
    HOME: '/home/alice',
    USER: 'alice',
    LOGNAME: 'alice',
    SHELL: '/bin/bash',
    PS1: BOX_PS1,
    LATCHGATE_SANDBOX: '1',
    LATCHGATE_BOX: '1',
    LATCHGATE_WORKSPACE: '/home/alice/project',
  });
});

test('the prompt says the shell is in the box, unless --pass-env PS1 asks for the host\'s', () => {
  assert.match(BOX_PS1, /^\[latchgate\] \$USER@latchgate:\$PWD\\\$ $/);
  assert.equal(buildBoxEnv(input({ hostEnv: { PS1: 'host> ' } })).PS1, BOX_PS1, 'the host prompt is not passed on its own');
  assert.equal(buildBoxEnv(input({ hostEnv: { PS1: 'host> ' }, passEnv: ['PS1'] })).PS1, 'host> ');
  assert.throws(() => buildBoxEnv(input({ passEnv: ['LATCHGATE_BOX'] })), /LATCHGATE_\* variables are set by latchgate/);
});

test('passes exactly the --pass-env names on top', () => {
  const env = buildBoxEnv(input({ passEnv: ['MY_TOKEN', 'GITHUB_TOKEN', 'NOT_SET_ON_HOST'] }));
  assert.equal(env.MY_TOKEN, 'mine');
  assert.equal(env.GITHUB_TOKEN, 'ghp_x');
  assert.ok(!('NOT_SET_ON_HOST' in env));
  for (const k of ['AWS_SECRET_ACCESS_KEY', 'AWS_ACCESS_KEY_ID', 'SSH_AUTH_SOCK', 'OPENAI_API_KEY', 'LD_PRELOAD', 'DOCKER_HOST', 'EDITOR', 'PWD', 'UNSET']) {
    assert.ok(!(k in env), `${k} must not reach the box`);
  }
  assert.equal(env.PATH, BOX_PATH, 'the host PATH is not used');
  assert.equal(env.LATCHGATE_SANDBOX, '1', 'the host value is overwritten');
  assert.ok(Object.values(env).every((v) => typeof v === 'string'));
});

test('extra PATH entries are appended after the system ones', () => {
  const env = buildBoxEnv(input({ extraPath: ['/opt/tools/bin', '/opt/tools/sbin'] }));
  assert.equal(env.PATH, `${BOX_PATH}:/opt/tools/bin:/opt/tools/sbin`);
  assert.ok(BOX_PATH.split(':').every((d) => d.startsWith('/')));
  assert.ok(BOX_PATH.split(':').includes('/usr/bin'));
});

test('buildBoxEnv refuses a dangerous --pass-env instead of passing it', () => {
  assertLaunchError(() => buildBoxEnv(input({ passEnv: ['LD_PRELOAD'] })), LaunchError, 'LD_PRELOAD');
  assertLaunchError(() => buildBoxEnv(input({ passEnv: ['SSH_AUTH_SOCK'] })), LaunchError, 'SSH_AUTH_SOCK');
});

const REFUSED = [
  'LD_PRELOAD', 'LD_LIBRARY_PATH', 'LD_AUDIT', 'LD_ANYTHING', 'LD_', 'BASH_ENV', 'ENV', 'PROMPT_COMMAND', 'NODE_OPTIONS',
  'PYTHONSTARTUP', 'PERL5OPT', 'SSH_AUTH_SOCK', 'GPG_AGENT_INFO', 'DOCKER_HOST', 'CONTAINER_HOST',
  'DBUS_SESSION_BUS_ADDRESS', 'DBUS_SYSTEM_BUS_ADDRESS', 'XDG_RUNTIME_DIR', 'DISPLAY', 'WAYLAND_DISPLAY', 'XAUTHORITY',
  'GIT_SSH_COMMAND', 'GIT_EXEC_PATH', 'GIT_CONFIG_GLOBAL', 'GIT_DIR', 'GIT_CONFIG_COUNT', 'GIT_CONFIG_KEY_0',
  'GIT_CONFIG_PARAMETERS', 'BASH_FUNC_foo', 'PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'PWD',
  'LATCHGATE_X', 'LATCHGATE_SANDBOX', 'LATCHGATE_WORKSPACE',
];

for (const name of REFUSED) {
  test(`validatePassEnv refuses ${name}, naming it`, () => {
    assert.ok(refusalReason(name), `refusalReason(${name})`);
    const e = assertLaunchError(() => validatePassEnv([name]), LaunchError, `--pass-env ${name}: refused`);
    assert.match(e.message, /remove it from --pass-env/);
    // Also when it hides behind an allowed name.
    assertLaunchError(() => validatePassEnv(['MY_TOKEN', name]), LaunchError, name);
  });
}

const MALFORMED = ['BASH_FUNC_x%%', 'A=B', 'MY TOKEN', ' MY_TOKEN', 'MY_TOKEN ', '', '1ABC', 'A-B', 'A.B', 'ÄRGER', 'A\nB', 'A\0B'];
for (const name of MALFORMED) {
  test(`validatePassEnv refuses the malformed name ${JSON.stringify(name)}, naming it`, () => {
    assertLaunchError(() => validatePassEnv([name]), LaunchError, `--pass-env ${JSON.stringify(name)}`, 'expected a variable name');
  });
}

test('validatePassEnv names the source it is given', () => {
  assertLaunchError(() => validatePassEnv(['LD_PRELOAD'], 'latchgate.toml pass_env'), LaunchError, 'latchgate.toml pass_env LD_PRELOAD');
});

test('ordinary names pass', () => {
  validatePassEnv([]);
  validatePassEnv(['MY_TOKEN', 'GITHUB_TOKEN', 'OPENAI_API_KEY', '_PRIVATE', 'a', 'ld_preload_lowercase_is_not_the_loader', 'GIT_AUTHOR_NAME', 'ENVIRONMENT', 'LDAP_URI']);
  for (const n of ['MY_TOKEN', 'TERM', 'LC_ALL', 'GIT_AUTHOR_NAME', 'ENVIRONMENT', 'LDAP_URI']) assert.equal(refusalReason(n), undefined, n);
});
