// Files the engine writes: always atomically (write to a temporary name in the same folder, then
// rename), so that a process killed mid-save leaves the previous file intact, never half a file.
import { mkdir, open, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { SerializedCheckpoint } from '../../models/checkpoint'
import { readRegularFile } from './datasets/errors'

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

/**
 * Removes what writes cut short left behind (`<name>.tmp-<pid>-<time>`, here and in checkpoint
 * folders): none of it is ever read, and a resumed run should not carry it along.
 */
export async function removeStaleTemporaries(runDir: string): Promise<void> {
  const temporary = /\.tmp-\d+-\d+$/
  for (const entry of await readdir(runDir, { withFileTypes: true })) {
    if (entry.isFile() && temporary.test(entry.name)) await rm(join(runDir, entry.name), { force: true })
    if (entry.isDirectory() && entry.name.startsWith('ckpt-')) {
      for (const inner of await readdir(join(runDir, entry.name))) {
        if (temporary.test(inner)) await rm(join(runDir, entry.name, inner), { force: true })
      }
    }
  }
}

const LATEST = 'latest.json'
const CHECKPOINT_FOLDER = /^ckpt-\d{8,}$/
/** Largest checkpoint file read: far above any model here (the reference VAE's weights are 1 MB). */
const CHECKPOINT_FILE_MAX_BYTES = 2 ** 31 - 1

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

/** The latest checkpoint's folder (null when the run has no latest.json yet). */
async function latestCheckpointFolder(runDir: string): Promise<string | null> {
  let pointer: { checkpoint: string }
  try {
    pointer = JSON.parse(await readFile(join(runDir, LATEST), 'utf8'))
  } catch {
    return null
  }
  // The pointer names a checkpoint folder of this run, nothing else ("../../etc" is not one).
  const name = typeof pointer?.checkpoint === 'string' ? pointer.checkpoint : ''
  if (!CHECKPOINT_FOLDER.test(name)) throw new Error(`${join(runDir, LATEST)} does not name a checkpoint folder of this run (it says ${JSON.stringify(name.slice(0, 80))})`)
  return join(runDir, name)
}

async function readCheckpointDocument(folder: string): Promise<SerializedCheckpoint['document']> {
  return JSON.parse((await readRegularFile(join(folder, 'checkpoint.json'), CHECKPOINT_FILE_MAX_BYTES)).toString('utf8'))
}

/** Only the latest checkpoint's checkpoint.json (position, history, config): no weights read. */
export async function loadLatestCheckpointDocument(runDir: string): Promise<SerializedCheckpoint['document'] | null> {
  const folder = await latestCheckpointFolder(runDir)
  return folder ? readCheckpointDocument(folder) : null
}

export async function loadLatestCheckpoint(runDir: string): Promise<SerializedCheckpoint | null> {
  const folder = await latestCheckpointFolder(runDir)
  if (!folder) return null
  const document = await readCheckpointDocument(folder)
  const weights = new Uint8Array(await readRegularFile(join(folder, 'weights.bin'), CHECKPOINT_FILE_MAX_BYTES))
  let optimizer: Uint8Array | null = null
  try {
    optimizer = new Uint8Array(await readRegularFile(join(folder, 'optimizer.bin'), CHECKPOINT_FILE_MAX_BYTES))
  } catch {
    optimizer = null
  }
  return { document, weights, optimizer }
}
