// `latchgate doctor`: print the host report; exit 0 only at full isolation.
import { Command } from 'commander';
import { appArmorProfile, runDoctor } from '../doctor/checks.js';

const MARK = { ok: 'ok  ', warn: 'warn', fail: 'FAIL' } as const;

export function doctorCommand(): Command {
  return new Command('doctor')
    .summary('check what isolation this host gives the sandbox')
    .description('Checks user namespaces (and distribution restrictions), Landlock, seccomp, PTYs and cgroups, then\nbuilds a real box. Exits 0 only if `latchgate sandbox` can run at full isolation.')
    .option('--json', 'print the report as JSON')
    .option('--print-apparmor-profile', 'print the AppArmor profile that lifts Ubuntu\'s user-namespace restriction')
    .action(async (o: { json?: boolean; printApparmorProfile?: boolean }) => {
      if (o.printApparmorProfile) {
        process.stdout.write(appArmorProfile());
        return;
      }
      const r = await runDoctor();
      if (o.json) {
        process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      } else {
        for (const c of r.checks) {
          process.stdout.write(`[${MARK[c.status]}] ${c.name}: ${c.detail}\n`);
          if (c.fix) process.stdout.write(`       fix: ${c.fix}\n`);
        }
        process.stdout.write(`isolation: ${r.isolation}\n`);
      }
      process.exitCode = r.isolation === 'full' ? 0 : 1;
    });
}
