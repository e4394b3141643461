// Files the engine writes: always atomically (write to a temporary name in the same folder, then
// rename), so that a process killed mid-save leaves the previous file intact, never half a file.
import { open, rename, writeFile } from 'node:fs/promises'

/** `<name>.tmp-<pid>-<time>`: what writeFileAtomic leaves behind when its process is killed. */
export const ATOMIC_TEMPORARY = /\.tmp-\d+-\d+$/

export async function writeFileAtomic(path: string, data: Uint8Array | string): Promise<void> {
  const temporary = `${path}.tmp-${process.pid}-${Date.now()}`
  await writeFile(temporary, data)
  // fsync before the rename: otherwise a power cut can leave the new name pointing at empty data.
  const handle = await open(temporary, 'r+')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
  await rename(temporary, path)
}
