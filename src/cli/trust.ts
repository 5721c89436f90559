// `latchgate trust`: record, list and remove trusted configuration files
// (config/trust.ts decides when a file needs it).
import { Command } from 'commander';
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { projectConfigFile } from '../config/paths.js';
import { assess, grantDiffLines, kindOf, readConfigSource } from '../config/trust.js';
import { shellWord } from '../core/shell-word.js';
import { readTrustStore, trustStorePath, writeTrustStore } from '../config/trust-store.js';
import { LaunchError } from '../core/errors.js';

interface TrustFlags {
  list?: boolean;
  remove?: boolean;
  sha256?: string;
  json?: boolean;
}

function out(o: TrustFlags, value: unknown, text: string): void {
  process.stdout.write(o.json ? JSON.stringify(value, null, 2) + '\n' : text + '\n');
}

export function trustCommand(): Command {
  return new Command('trust')
    .summary('trust a configuration file that grants more than the defaults')
    .description(
      [
        'Record that you trust FILE (default: ./.latchgate/latchgate.toml of the current directory) with exactly its current content: ' +
          'its real path, the SHA-256 of the content and what it grants, in $XDG_STATE_HOME/latchgate/trusted-configs.json (mode 0600).',
        'A configuration file that grants more than the defaults is used by `latchgate sandbox`, `latchgate up` and the gate commands ' +
          'only once trusted, and again after every change: a box may have written it. Grants are mounts, a workspace outside the ' +
          'directory that holds the file, allow_hosts, allow_ports other than 443, pass_env, credential routes, resolve pins, ' +
          'extra_ca_certs, principal, and everything in [gate], [identity], [operators], [policy] and [state]. Limits and strict_net ' +
          'only narrow and need no trust; neither does your user-level config, $XDG_CONFIG_HOME/latchgate/latchgate.toml, while only you can write it.',
      ].join('\n\n'),
    )
    .addHelpText(
      'after',
      [
        '',
        'Exit status: 0 done; 1 --remove found no record; 125 bad input, an unreadable file or store,',
        'or a file whose SHA-256 is not the one given.',
        '',
        'Examples:',
        '  latchgate trust                                   trust ./.latchgate/latchgate.toml as it is now',
        '  latchgate trust --sha256 HEX ci/latchgate.toml    only if it still has the content you were shown',
        '  latchgate trust --list                            trusted files, and whether each still matches',
        '  latchgate trust --remove ci/latchgate.toml        forget it: it is refused again',
      ].join('\n'),
    )
    .argument('[file]', 'configuration file (latchgate.toml or a --sandbox-config file)')
    .option('--sha256 <hex>', 'trust the file only if its content has this SHA-256 (the refusal message gives it)')
    .option('--list', 'list the trusted files')
    .option('--remove', 'remove the trust record of FILE')
    .option('--json', 'machine-readable output')
    .action((file: string | undefined, o: TrustFlags) => {
      if (o.list && (o.remove || file !== undefined || o.sha256 !== undefined)) throw new LaunchError('trust --list: takes no FILE, --remove or --sha256');
      if (o.remove && o.sha256 !== undefined) throw new LaunchError('trust --remove: takes no --sha256');
      if (o.sha256 !== undefined && !/^[0-9a-fA-F]{64}$/.test(o.sha256)) throw new LaunchError(`--sha256 ${o.sha256}: expected 64 hexadecimal digits`);
      if (o.list) return list(o);
      const given = file ?? projectConfigFile();
      if (o.remove) return remove(given, o);
      return trust(given, o);
    });
}

function trust(given: string, o: TrustFlags): void {
  const src = readConfigSource(given, 'latchgate trust');
  const a = assess(src, kindOf(src));
  const base = { file: src.real, sha256: src.sha256, grants: a.grants };
  if (a.status === 'user-config') return out(o, { ...base, status: 'user-config' }, `${src.real} is your user-level configuration: always used, nothing to record`);
  if (a.status === 'grant-free') return out(o, { ...base, status: 'grant-free' }, `${src.real} grants nothing beyond the defaults: used without trust, nothing recorded`);
  if (o.sha256 !== undefined && o.sha256.toLowerCase() !== src.sha256) {
    throw new LaunchError(`${src.real}: its content changed since you were shown it (its SHA-256 is now ${src.sha256}, not ${o.sha256.toLowerCase()}); nothing was trusted. Read it again, then run: latchgate trust --sha256 ${src.sha256} ${shellWord(src.real)}`);
  }
  const lines = grantDiffLines(a);
  const store = trustStorePath();
  const entries = readTrustStore(store).filter((e) => e.path !== src.real);
  writeTrustStore(store, [...entries, { path: src.real, sha256: src.sha256, grants: a.grants, trusted_at: new Date().toISOString() }]);
  const against = a.entry ? 'against the version trusted before' : 'against the defaults';
  out(o, { ...base, status: 'trusted', previous_grants: a.entry?.grants ?? null, store }, [`trusted ${src.real} (sha256 ${src.sha256}); it grants (${against}):`, ...lines.map((l) => `  ${l}`)].join('\n'));
}

function remove(given: string, o: TrustFlags): void {
  let key: string;
  try {
    key = realpathSync(given);
  } catch {
    key = resolve(given); // the file is gone: its record is still under the path it had
  }
  const store = trustStorePath();
  const entries = readTrustStore(store);
  const kept = entries.filter((e) => e.path !== key);
  if (kept.length === entries.length) throw new LaunchError(`${key}: not in the trust store ${store}; see latchgate trust --list`, 1);
  writeTrustStore(store, kept);
  out(o, { file: key, status: 'removed', store }, `removed ${key} from the trust store: it is refused until trusted again`);
}

function list(o: TrustFlags): void {
  const store = trustStorePath();
  const rows = readTrustStore(store).map((e) => {
    let status: string;
    try {
      const src = readConfigSource(e.path, 'latchgate trust');
      status = assess(src, kindOf(src)).status;
    } catch (err) {
      if (!(err instanceof LaunchError)) throw err;
      status = /ENOENT/.test(err.message) ? 'missing' : 'invalid';
    }
    return { file: e.path, status, sha256: e.sha256, trusted_at: e.trusted_at, grants: e.grants };
  });
  if (o.json) return out(o, { store, configs: rows }, '');
  if (rows.length === 0) return out(o, null, `no trusted configuration files (${store})`);
  out(o, null, rows.map((r) => [`${r.file}  ${r.status}  trusted ${r.trusted_at}`, ...r.grants.map((g) => `    ${g}`)].join('\n')).join('\n'));
}
