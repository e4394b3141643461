// Files the engine writes: always atomically (write to a temporary name in the same folder, then
// rename), so that a process killed mid-save leaves the previous file intact, never half a file.
import { mkdir, open, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { SerializedCheckpoint } from '../../models/checkpoint'

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

const LATEST = 'latest.json'

/**
 * A checkpoint is three files (checkpoint.json, weights.bin, optimizer.bin). Each is written into a
 * fresh folder ckpt-<step>; only then is latest.json switched (atomically) to name it, and older
 * folders removed. A reader follows latest.json, so it always sees a complete checkpoint.
 */
export async function saveCheckpoint(runDir: string, checkpoint: SerializedCheckpoint, step: number): Promise<string> {
  const folderName = `ckpt-${String(step).padStart(8, '0')}`
  const folder = join(runDir, folderName)
  await mkdir(folder, { recursive: true })
  await writeFileAtomic(join(folder, 'weights.bin'), checkpoint.weights)
  if (checkpoint.optimizer) await writeFileAtomic(join(folder, 'optimizer.bin'), checkpoint.optimizer)
  await writeFileAtomic(join(folder, 'checkpoint.json'), JSON.stringify(checkpoint.document, null, 1))
  await writeFileAtomic(join(runDir, LATEST), JSON.stringify({ checkpoint: folderName, step, savedAt: new Date().toISOString() }))
  for (const entry of await readdir(runDir)) {
    if (entry.startsWith('ckpt-') && entry !== folderName) await rm(join(runDir, entry), { recursive: true, force: true })
  }
  return folder
}

export async function loadLatestCheckpoint(runDir: string): Promise<SerializedCheckpoint | null> {
  let pointer: { checkpoint: string }
  try {
    pointer = JSON.parse(await readFile(join(runDir, LATEST), 'utf8'))
  } catch {
    return null
  }
  const folder = join(runDir, pointer.checkpoint)
  const document = JSON.parse(await readFile(join(folder, 'checkpoint.json'), 'utf8'))
  const weights = new Uint8Array(await readFile(join(folder, 'weights.bin')))
  let optimizer: Uint8Array | null = null
  try {
    optimizer = new Uint8Array(await readFile(join(folder, 'optimizer.bin')))
  } catch {
    optimizer = null
  }
  return { document, weights, optimizer }
}
