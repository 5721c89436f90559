// Builds a provider from a JavaScript ES module with componentize-js, for one
// of the worlds of wit/latchgate-io.wit, with every WASI feature off so that
// the component imports only latchgate:io interfaces. What `latchgate
// providers build` runs; the steps are those docs/PROVIDERS.md gives.
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { LaunchError } from '../core/errors.js';

export const WIT_DIR = fileURLToPath(new URL('../../wit', import.meta.url));
export const PROVIDER_WORLDS = ['http-provider', 'fs-provider', 'pure-provider', 'provider'] as const;
export type ProviderWorld = (typeof PROVIDER_WORLDS)[number];

export const digestOfBytes = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

export async function buildJsProvider(source: string, world: ProviderWorld): Promise<Uint8Array> {
  if (!(PROVIDER_WORLDS as readonly string[]).includes(world)) throw new LaunchError(`--world ${world}: expected one of ${PROVIDER_WORLDS.join(', ')}`);
  // preview2-shim on Node starts with no preopens; componentize reads the source and the WIT through it.
  const { _setPreopens } = (await import('@bytecodealliance/preview2-shim/filesystem')) as unknown as { _setPreopens(p: Record<string, string>): void };
  _setPreopens({ '/': '/' });
  const { componentize } = await import('@bytecodealliance/componentize-js');
  try {
    const { component } = await componentize({ sourcePath: source, witPath: WIT_DIR, worldName: world, disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'] });
    return component;
  } catch (e) {
    throw new LaunchError(`${source}: componentize-js could not build it for the world ${world}: ${(e as Error).message.split('\n').slice(0, 6).join(' ')}`);
  }
}
