// Where a worker thread's built entry is. electron-vite bundles each worker as its own entry in
// out/main (see electron.vite.config.ts); the code asking for it may sit in out/main itself or in
// out/main/chunks, or run from the TypeScript sources (tests, tsx), where there is no built entry.
import { existsSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'

/** out/main/<name>.js as seen from the directory `here` of the calling module, or null where it is not built. */
export function builtWorkerPath(name: string, here: string): string | null {
  const outMain = basename(here) === 'chunks' ? dirname(here) : here
  const path = join(outMain, `${name}.js`)
  return existsSync(path) ? path : null
}
