// `latchgate tokens`: the client tokens that identify callers on the TCP
// listener (`latchgate up --expose-http`). Operator acts on the shared state,
// like the other gate commands: a running gate reads a token's row on every
// request, so a new or revoked token counts from its next request on.
import { Command, InvalidArgumentError } from 'commander';
import { displayText } from './safe-text.js';
import { textTable } from '../core/text-table.js';
import { common, print, withGate, type Out } from './gate-commands.js';
import { localOperator } from '../gate/setup.js';

const UNIT_SECONDS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400 };

/** --expires: `30d`, `12h`, `90m`, `3600s`, `2w` (seconds), or `never`. */
export function parseExpiry(v: string): number | 'never' {
  if (v === 'never') return v;
  const m = /^(\d{1,6})([smhdw])$/.exec(v);
  if (!m) throw new InvalidArgumentError('expected a number and a unit (s, m, h, d, w) such as 30d, or "never"');
  return Number(m[1]) * UNIT_SECONDS[m[2]!]!;
}

const csv = (v: string) => v.split(',').map((x) => x.trim()).filter(Boolean);

/** A token's columns: id, principal, scopes, and whether it was revoked, expires or never does. */
function cells(t: Record<string, unknown>): string[] {
  const state = t.revoked_at ? `revoked ${displayText(t.revoked_at)}` : t.expires_at ? `expires ${displayText(t.expires_at)}` : 'never expires';
  return [displayText(t.token_id), displayText(t.principal), (t.scopes as string[]).map(displayText).join(', '), state];
}

export function tokensCommand(): Command {
  const c = new Command('tokens').summary('client tokens: the only identity of callers on the --expose-http port');
  c.addCommand(common(new Command('create').summary('issue a token; its secret is printed once and never stored'))
    .requiredOption('--principal <name>', 'the principal its callers are: a configured one (at most its scopes) or a name of its own')
    .option('--scopes <list>', 'comma-separated lease scopes (default: the configured principal\'s, else tools:call)', csv)
    .option('--expires <duration>', 'lifetime: 30d (the default), 12h, 90m, 2w, or never', parseExpiry)
    .action(async (o: Out & { principal: string; scopes?: string[]; expires?: number | 'never' }) => {
      await withGate(o, (g, s) => {
        const r = g.gate.admin.tokensCreate(localOperator(s), { principal: o.principal, ...(o.scopes ? { scopes: o.scopes } : {}), ...(o.expires !== undefined ? { expires_in_seconds: o.expires === 'never' ? null : o.expires } : {}) });
        print(o, r, () => `${r.token}\n\nissued ${cells(r).join('  ')}\nShown once: only its hash is stored. Send it as "LatchGate-Token: ${String(r.token).slice(0, 4)}..." on every request to the --expose-http port.`);
      });
    }));
  c.addCommand(common(new Command('list').summary('every token: id, principal, scopes, expiry or revocation (never a secret)')).action(async (o: Out) => {
    await withGate(o, (g) => {
      const list = g.gate.admin.tokensList();
      print(o, list, () => (list.length === 0 ? 'no tokens' : textTable(['TOKEN_ID', 'PRINCIPAL', 'SCOPES', 'STATE'], list.map(cells))));
    });
  }));
  c.addCommand(common(new Command('revoke').summary('revoke a token and every lease issued through it, from their next request on')).argument('<id>', 'the token id (latchgate tokens list)').action(async (id: string, o: Out) => {
    await withGate(o, (g, s) => {
      const r = g.gate.admin.tokensRevoke(localOperator(s), id);
      print(o, r, () => `revoked token ${displayText(r.token_id)} (${displayText(r.principal)}): it and the leases issued through it are refused from their next request on`);
    });
  }));
  return c;
}
