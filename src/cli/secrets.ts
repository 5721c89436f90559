// `latchgate secrets`: the SOPS file of credentials (docs/SECRETS.md). Values
// come in on stdin or a prompt with echo off, never as arguments (shell
// history and `ps` would keep them), and go out only to a pipe or with
// --reveal.
import { Command } from 'commander';
import { LaunchError } from '../core/errors.js';
import { loadTrustedConfig } from '../config/trust.js';
import { SecretsError } from '../secrets/errors.js';
import { loadAgeIdentities } from '../secrets/identities.js';
import { secretsLocations } from '../secrets/locations.js';
import {
  addRecipient, checkSecretName, getSecret, initSecrets, listSecrets, removeRecipient, removeSecret, rotateDataKey, setSecret,
  SECRET_NAME_RULE, type SecretsFileRef,
} from '../secrets/secrets-file.js';
import { print } from './gate-commands.js';
import { displayText } from './safe-text.js';
import { textTable } from '../core/text-table.js';

type Opts = { config?: string; file?: string; ageKeyFile?: string; json?: boolean };

const MAX_VALUE_BYTES = 1024 * 1024;

function withOptions(c: Command, json = false): Command {
  c.option('--config <file>', 'latchgate.toml (for [secrets])')
    .option('--file <path>', 'the SOPS file (default: [secrets] sops_file, else $XDG_CONFIG_HOME/latchgate/secrets.enc.yaml)')
    .option('--age-key-file <path>', 'the age identity file (default: [secrets] age_key_file, else $XDG_CONFIG_HOME/latchgate/age-key.txt; $SOPS_AGE_KEY and $SOPS_AGE_KEY_FILE are read too)');
  return json ? c.option('--json', 'machine-readable output') : c;
}

function locations(o: Opts): { sopsFile: string; ageKeyFile: string } {
  const l = secretsLocations(loadTrustedConfig(o.config).config);
  return { sopsFile: o.file ?? l.sopsFile, ageKeyFile: o.ageKeyFile ?? l.ageKeyFile };
}

function fileRef(o: Opts): SecretsFileRef {
  const l = locations(o);
  return { sopsFile: l.sopsFile, identities: loadAgeIdentities({ ageKeyFile: l.ageKeyFile }) };
}

/** SecretsError -> exit 1 with its code and message. */
function run<A extends unknown[]>(fn: (...a: A) => Promise<void>): (...a: A) => Promise<void> {
  return async (...a: A) => {
    try {
      await fn(...a);
    } catch (e) {
      if (e instanceof SecretsError) throw new LaunchError(`secrets: ${e.code}: ${e.message}`, 1);
      throw e;
    }
  };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of process.stdin) {
    size += (c as Buffer).length;
    if (size > MAX_VALUE_BYTES) throw new LaunchError(`secrets: a value is at most ${MAX_VALUE_BYTES} bytes`, 1);
    chunks.push(c as Buffer);
  }
  // One trailing newline is the shell's (echo, a here-string), not the value's.
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/**
 * A line typed at the terminal with echo off. Echo goes off before the
 * prompt is shown, as getpass(3) does: setRawMode waits for written output
 * to drain, so with the prompt first, what was typed just as it appeared
 * was still echoed.
 */
function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  stdin.setRawMode(true);
  process.stderr.write(question);
  stdin.setEncoding('utf8');
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const done = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    const onData = (s: string) => {
      for (const ch of s) {
        if (ch === '\r' || ch === '\n') { done(); resolve(value); return; }
        if (ch === '\u0003' || ch === '\u0004') { done(); reject(new LaunchError('secrets: cancelled', 1)); return; }
        value = ch === '\u007f' || ch === '\b' ? value.slice(0, -1) : value + ch;
      }
    };
    stdin.on('data', onData);
  });
}

const NOT_IN_ARGV = 'a value is never taken from the command line, where shell history and `ps` would keep it: pipe it in (`printf %s "$KEY" | latchgate secrets set NAME`) or type it at the prompt';

export function secretsCommand(): Command {
  const c = new Command('secrets')
    .summary('credentials in a SOPS file encrypted to age keys, decrypted on the host only when used')
    .description(`Secrets live in a SOPS file whose data key is encrypted to age recipients (docs/SECRETS.md). Names are UPPER_SNAKE_CASE (${SECRET_NAME_RULE.source}).`);

  c.addCommand(withOptions(new Command('init').summary('create an age identity (mode 0600) and an empty SOPS file encrypted to it; overwrites neither'), true)
    .action(run(async (o: Opts) => {
      const l = locations(o);
      const r = await initSecrets(l);
      print(o, { ...l, recipient: r.recipient }, () => `created ${l.ageKeyFile} (age identity, mode 0600; back it up: without it the secrets are lost)\ncreated ${l.sopsFile} (encrypted to ${r.recipient})`);
    })));

  c.addCommand(withOptions(new Command('set').summary('set a secret; the value from stdin, or typed at a prompt with echo off')
    .description('Sets NAME to the value read from stdin (one trailing newline dropped), or typed at a prompt with echo off when stdin is a terminal:\n  printf %s "$KEY" | latchgate secrets set OPENAI_API_KEY\nThe value is never an argument: shell history and `ps` would keep it.'))
    .argument('<name>', 'UPPER_SNAKE_CASE name')
    .argument('[value...]', 'refused: values never come from the command line')
    .action(run(async (name: string, extra: string[], o: Opts) => {
      if (extra.length > 0) throw new SecretsError('bad_value', NOT_IN_ARGV);
      checkSecretName(name);
      const ref = fileRef(o);
      const value = process.stdin.isTTY ? await promptHidden(`value of ${name}: `) : await readStdin();
      await setSecret(ref, name, value);
      process.stderr.write(`set ${name} in ${ref.sopsFile}\n`);
    })));

  c.addCommand(withOptions(new Command('get').summary('print a secret\'s value to a pipe (to a terminal only with --reveal)')
    .description('Prints the value of NAME exactly (no newline added) when stdout is a pipe or a file, e.g. `OPENAI_API_KEY=$(latchgate secrets get OPENAI_API_KEY) cmd`; to a terminal only with --reveal.'))
    .argument('<name>')
    .option('--reveal', 'print it even to a terminal')
    .action(run(async (name: string, o: Opts & { reveal?: boolean }) => {
      checkSecretName(name);
      if (process.stdout.isTTY && !o.reveal) throw new SecretsError('bad_value', `not printing ${name} to a terminal (it would stay on screen and in scrollback): pipe it (\`latchgate secrets get ${name} | ...\`) or pass --reveal`);
      const v = await getSecret(fileRef(o), name);
      process.stdout.write(process.stdout.isTTY ? `${v}\n` : v);
    })));

  c.addCommand(withOptions(new Command('list').summary('the secrets\' names and when each was last set (never a value)'), true)
    .action(run(async (o: Opts) => {
      const ref = fileRef(o);
      const r = await listSecrets(ref);
      print(o, { file: ref.sopsFile, ...r }, () => (r.secrets.length === 0 ? `no secrets in ${ref.sopsFile}`
        : textTable(['NAME', 'CHANGED'], r.secrets.map((s) => [displayText(s.name), s.changed === null ? '(set outside latchgate)' : displayText(s.changed)]))));
    })));

  c.addCommand(withOptions(new Command('remove').summary('delete a secret')).argument('<name>')
    .action(run(async (name: string, o: Opts) => {
      const ref = fileRef(o);
      await removeSecret(ref, name);
      process.stderr.write(`removed ${name} from ${ref.sopsFile}\n`);
    })));

  const rec = new Command('recipients').summary('the age recipients the file is encrypted to');
  rec.addCommand(withOptions(new Command('list').summary('the recipients (age1...)'), true)
    .action(run(async (o: Opts) => {
      const r = await listSecrets(fileRef(o));
      print(o, r.recipients, () => (r.recipients.length === 0 ? 'no recipients' : textTable(['RECIPIENT'], r.recipients.map((x) => [displayText(x)]))));
    })));
  rec.addCommand(withOptions(new Command('add').summary('encrypt the data key to one more recipient')).argument('<recipient>', 'age1...')
    .action(run(async (recipient: string, o: Opts) => {
      await addRecipient(fileRef(o), recipient);
      process.stderr.write(`added ${recipient}\n`);
    })));
  rec.addCommand(withOptions(new Command('remove').summary('stop encrypting to a recipient; the data key is replaced and every value re-encrypted')).argument('<recipient>', 'age1...')
    .option('--force', 'even when none of your own identities would be left able to read the file')
    .action(run(async (recipient: string, o: Opts & { force?: boolean }) => {
      await removeRecipient(fileRef(o), recipient, o.force ?? false);
      process.stderr.write(`removed ${recipient}; the data key was replaced\n`);
    })));
  c.addCommand(rec);

  c.addCommand(withOptions(new Command('rotate').summary('a new data key: every value re-encrypted, the key encrypted to every recipient'))
    .action(run(async (o: Opts) => {
      const ref = fileRef(o);
      await rotateDataKey(ref);
      process.stderr.write(`rotated the data key of ${ref.sopsFile}\n`);
    })));
  return c;
}
