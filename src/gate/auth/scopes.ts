// Lease scopes: their syntax (built-ins, or a custom `namespace:name`)
// and the intersection of what a client asks for with what its principal may
// hold.

export const BUILTIN_SCOPES: readonly string[] = Object.freeze(['tools:call', 'audit:read']);

const SCOPE_CHARS = /^[a-z][a-z0-9:_-]*$/;

/**
 * True for a built-in scope, or a custom scope: 4-64 characters of
 * [a-z0-9:_-], starting with a lowercase letter, containing a ':' and not
 * ending with one.
 */
export function isValidScope(scope: unknown): scope is string {
  if (typeof scope !== 'string') return false;
  if (BUILTIN_SCOPES.includes(scope)) return true;
  return (
    scope.length >= 4 &&
    scope.length <= 64 &&
    SCOPE_CHARS.test(scope) &&
    scope.includes(':') &&
    !scope.endsWith(':')
  );
}

/**
 * The requested scopes the principal may hold, in the order requested,
 * without duplicates. Exact string match: no wildcards.
 */
export function intersectScopes(requested: readonly string[], allowed: readonly string[]): string[] {
  const may = new Set(allowed);
  const out: string[] = [];
  for (const s of requested) if (may.has(s) && !out.includes(s)) out.push(s);
  return out;
}
