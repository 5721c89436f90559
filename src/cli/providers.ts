// `latchgate providers build|digest|check|logs`: what an operator needs to make a
// custom provider, trust it by its digest and read what it logged (docs/PROVIDERS.md).
import { Command, Option } from 'commander';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LaunchError } from '../core/errors.js';
import { buildJsProvider, digestOfBytes, PROVIDER_WORLDS, type ProviderWorld } from '../providers/build-js.js';
import { ProviderRuntime } from '../providers/runtime.js';
import { IO_INTERFACES } from '../providers/runtime-types.js';
import { print, withGate, type Out } from './gate-commands.js';
import { providerLogsCommand } from './provider-logs.js';

function read(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (e) {
    throw new LaunchError(`${file}: cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 2);
  }
}

const unversioned = (i: string) => i.replace(/@[^/]*$/, '');

export function providersCommand(): Command {
  const c = new Command('providers').summary('build, hash and check WebAssembly providers; read their logs');
  c.addCommand(
    new Command('build')
      .summary('build a provider from a JavaScript ES module with componentize-js')
      .argument('<source>', 'the ES module exporting execute(taskJson)')
      .addOption(new Option('--world <world>', 'the world it is built for').choices([...PROVIDER_WORLDS]).default('http-provider'))
      .requiredOption('-o, --out <file>', 'where the component is written')
      .option('--json', 'machine-readable output')
      .action(async (source: string, o: { world: ProviderWorld; out: string; json?: boolean }) => {
        const bytes = await buildJsProvider(source, o.world);
        writeFileSync(o.out, bytes);
        const r = { file: o.out, digest: digestOfBytes(bytes), bytes: bytes.length, world: o.world };
        print(o, r, () => `${r.file}: ${r.bytes} bytes, ${r.digest}\nPut it in the action's manifest: provider_module_digest: "${r.digest}" and provider_source: "<path to ${r.file}, relative to the manifest>".`);
      }),
  );
  c.addCommand(
    new Command('digest')
      .summary('print the digest a manifest trusts a component file by')
      .argument('<file>')
      .option('--json', 'machine-readable output')
      .action((file: string, o: Out) => {
        const digest = digestOfBytes(read(file));
        print(o, { file, digest }, () => digest);
      }),
  );
  c.addCommand(
    new Command('check')
      .summary('compile a component as the gate would and list its imports; with --action, check it against that manifest')
      .argument('<file>')
      .option('--action <id>', 'the action whose manifest must trust this file')
      .option('--config <file>', 'latchgate.toml')
      .option('--json', 'machine-readable output')
      .action(async (file: string, o: Out & { action?: string }) => {
        const digest = digestOfBytes(read(file));
        const cache = mkdtempSync(join(tmpdir(), 'latchgate-check-'));
        const rt = new ProviderRuntime({ cacheDir: cache, poolSize: 1 });
        const problems: string[] = [];
        let imports: string[] = [];
        try {
          await rt.load(file, digest);
          imports = (await rt.imports(digest)).map(unversioned);
        } catch (e) {
          problems.push(`it does not compile as a provider: ${(e as Error).message}`);
        } finally {
          await rt.close();
          rmSync(cache, { recursive: true, force: true });
        }
        for (const i of imports) if (!(IO_INTERFACES as readonly string[]).includes(i)) problems.push(`it imports ${i}, which no gate provides (only ${IO_INTERFACES.join(', ')}): rebuild it with the WASI features off`);
        if (o.action) {
          const m = await withGate(o, (g) => g.gate.getAction(o.action!) as { provider_module_digest: string; required_imports: string[]; provider: { component_digest?: string } });
          // A built-in is trusted by the digest its build recorded.
          const trusted = m.provider.component_digest ?? m.provider_module_digest;
          if (trusted !== digest) problems.push(`the manifest of ${o.action} trusts ${trusted}${trusted !== m.provider_module_digest ? ` (${m.provider_module_digest})` : ''}, this file is ${digest}`);
          const required = new Set(m.required_imports.map(unversioned));
          for (const i of imports) if (!required.has(i)) problems.push(`it imports ${i}, which ${o.action}'s required_imports does not list: the gate refuses to link it (provider_import_denied)`);
        }
        const r = { file, digest, imports, ok: problems.length === 0, problems };
        print(o, r, () => [`${file}: ${digest}`, `imports  ${imports.join(', ') || 'none'}`, ...(problems.length ? problems.map((p) => `PROBLEM  ${p}`) : ['ok'])].join('\n'));
        if (problems.length) process.exitCode = 1;
      }),
  );
  c.addCommand(providerLogsCommand());
  return c;
}
