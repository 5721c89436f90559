// jose (JWS, JWT, JWK), loaded at the first lease or proof to check or
// make: a command's gate (`latchgate audit`, `status`, ...) never does, and
// loading the package costs a command about a tenth of its start-up.
type Jose = typeof import('jose');

let loaded: Jose | undefined;
let loading: Promise<Jose> | undefined;

/** The jose module, loaded once. */
export function jose(): Jose | Promise<Jose> {
  return loaded ?? (loading ??= import('jose').then((m) => (loaded = m)));
}
