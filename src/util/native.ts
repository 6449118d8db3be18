/**
 * Loads the optional native addon (native/lifeboat_fs.c, built by `npm ci` on Linux) once, for the
 * few modules that use it: the file platform layer and the zstd codec. Undefined when it was not
 * built, on other systems, or with LIFEBOAT_NO_NATIVE=1; every caller has a portable fallback.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let loaded: { addon: unknown } | undefined;

function load(path: string): unknown {
  return createRequire(import.meta.url)(path);
}

export function nativeAddon<T>(): T | undefined {
  if (!loaded) {
    let addon: unknown;
    if (process.env['LIFEBOAT_NO_NATIVE'] !== '1' && process.platform === 'linux') {
      try {
        addon = load(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'build', 'Release', 'lifeboat_fs.node'));
      } catch {
        // The rescue program (scripts/bundle-rescue.mjs) keeps the addon beside its one file.
        try {
          addon = load(join(dirname(fileURLToPath(import.meta.url)), 'lifeboat_fs.node'));
        } catch {
          addon = undefined;
        }
      }
    }
    loaded = { addon };
  }
  return loaded.addon as T | undefined;
}
