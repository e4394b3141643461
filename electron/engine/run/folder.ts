// A run's folder: the one place that knows its files. The app and the CLI write the same folder,
// and every file goes through writeFileAtomic, so a process killed mid-save loses nothing.
//   run.json                 what the run was started with (RunRecord)
//   latest.json              names the newest complete checkpoint folder
//   ckpt-<step>/             checkpoint.json (config, position, history), weights.bin, optimizer.bin
//   outcome.json             how its last training ended (absent: killed while training)
//   history.json             every epoch's held-out figures, once training finished
//   latents.json, latents-<space>.f32   every item's posterior means, with the weights' digest
//   metrics.json             what the model learned (health, 5-NN, IWAE bound, warnings)
//   projection-<space>.bin   the fitted map of a space, with its UMAP settings
//   exports/                 what the user exported
import { readdir, readFile, mkdir, rm } from 'node:fs/promises'
import { basename, join } from 'node:path'
import type { SerializedCheckpoint } from '../../../models/checkpoint'
import type { ModelConfig } from '../../../models/index'
import type { ModelMetrics } from '../../../models/metrics'
import type { EpochSummary, TrainOptions } from '../../../models/train'
import type { ProjectionSettings } from '../../common/contract'
import { ATOMIC_TEMPORARY, writeFileAtomic } from '../atomic'
import { readRegularFile } from '../datasets/errors'
import { LatentProjection } from '../projection/index'

/** run.json: what a run was started with (the app and the CLI write the same). */
export interface RunRecord {
  config: ModelConfig
  options: TrainOptions
  dataset: string
  /** The cap on training items it was started with, if any. */
  maxTrainItems?: number
  /** The name the user gave the run (run.rename). */
  title?: string
  /** The app's id for the run (its folder's name); the CLI's runs have none. */
  runId?: string
}

/** outcome.json: how a run's last training ended. A run without one was killed while training. */
export interface RunOutcome {
  state: 'finished' | 'interrupted' | 'failed'
  message: string
  at: string
}

/** latest.json: which checkpoint folder is the newest complete one. */
export interface LatestPointer {
  checkpoint: string
  step: number
  savedAt: string
}

/** Posterior means per space, n x dim, in item order. */
export type Latents = Map<string, { dim: number; values: Float32Array }>

const LATEST = 'latest.json'
const CHECKPOINT_FOLDER = /^ckpt-\d{8,}$/
/** Largest checkpoint file read: far above any model here (the reference VAE's weights are 1 MB). */
const CHECKPOINT_FILE_MAX_BYTES = 2 ** 31 - 1

export class RunFolder {
  constructor(readonly dir: string) {}

  get name(): string {
    return basename(this.dir)
  }

  private path(file: string): string {
    return join(this.dir, file)
  }

  create(): Promise<string | undefined> {
    return mkdir(this.dir, { recursive: true })
  }

  async readRecord(): Promise<RunRecord> {
    let record: RunRecord
    try {
      record = JSON.parse(await readFile(this.path('run.json'), 'utf8')) as RunRecord
    } catch (error) {
      throw new Error(`${this.dir} is not a trained model's folder (no readable run.json: ${(error as Error).message})`)
    }
    if (!record?.config?.family || typeof record.dataset !== 'string') throw new Error(`${this.path('run.json')} lacks the model config or the dataset`)
    return record
  }

  writeRecord(record: RunRecord): Promise<void> {
    return writeFileAtomic(this.path('run.json'), JSON.stringify(record, null, 1))
  }

  /** run.json as it is on disk (an exported model carries it unchanged). */
  recordText(): Promise<string> {
    return readFile(this.path('run.json'), 'utf8')
  }

  /**
   * A checkpoint is three files (checkpoint.json, weights.bin, optimizer.bin). Each is written into a
   * fresh folder ckpt-<step>; only then is latest.json switched (atomically) to name it, and older
   * folders removed. A reader follows latest.json, so it always sees a complete checkpoint.
   */
  async saveCheckpoint(checkpoint: SerializedCheckpoint, step: number): Promise<string> {
    const folderName = `ckpt-${String(step).padStart(8, '0')}`
    const folder = this.path(folderName)
    await mkdir(folder, { recursive: true })
    await writeFileAtomic(join(folder, 'weights.bin'), checkpoint.weights)
    if (checkpoint.optimizer) await writeFileAtomic(join(folder, 'optimizer.bin'), checkpoint.optimizer)
    await writeFileAtomic(join(folder, 'checkpoint.json'), JSON.stringify(checkpoint.document, null, 1))
    const pointer: LatestPointer = { checkpoint: folderName, step, savedAt: new Date().toISOString() }
    await writeFileAtomic(this.path(LATEST), JSON.stringify(pointer))
    for (const entry of await readdir(this.dir)) {
      if (entry.startsWith('ckpt-') && entry !== folderName) await rm(this.path(entry), { recursive: true, force: true })
    }
    return folder
  }

  /** latest.json (null when the run has none yet); throws when it names anything but a checkpoint folder of this run. */
  async latestPointer(): Promise<LatestPointer | null> {
    let pointer: Partial<LatestPointer>
    try {
      pointer = JSON.parse(await readFile(this.path(LATEST), 'utf8'))
    } catch {
      return null
    }
    // The pointer names a checkpoint folder of this run, nothing else ("../../etc" is not one).
    const name = typeof pointer?.checkpoint === 'string' ? pointer.checkpoint : ''
    if (!CHECKPOINT_FOLDER.test(name))
      throw new Error(`${this.path(LATEST)} does not name a checkpoint folder of this run (it says ${JSON.stringify(name.slice(0, 80))})`)
    return { checkpoint: name, step: Number(pointer.step) || 0, savedAt: String(pointer.savedAt ?? '') }
  }

  /** Only the latest checkpoint's checkpoint.json (position, history, config): no weights read. */
  async latestCheckpointDocument(pointer?: LatestPointer | null): Promise<SerializedCheckpoint['document'] | null> {
    const latest = pointer === undefined ? await this.latestPointer() : pointer
    if (!latest) return null
    return JSON.parse((await readRegularFile(join(this.path(latest.checkpoint), 'checkpoint.json'), CHECKPOINT_FILE_MAX_BYTES)).toString('utf8'))
  }

  async latestCheckpoint(): Promise<SerializedCheckpoint | null> {
    const latest = await this.latestPointer()
    if (!latest) return null
    const folder = this.path(latest.checkpoint)
    const document = await this.latestCheckpointDocument(latest)
    if (!document) return null
    const weights = new Uint8Array(await readRegularFile(join(folder, 'weights.bin'), CHECKPOINT_FILE_MAX_BYTES))
    let optimizer: Uint8Array | null = null
    try {
      optimizer = new Uint8Array(await readRegularFile(join(folder, 'optimizer.bin'), CHECKPOINT_FILE_MAX_BYTES))
    } catch {
      optimizer = null
    }
    return { document, weights, optimizer }
  }

  /**
   * Removes what writes cut short left behind (`<name>.tmp-<pid>-<time>`, here and in checkpoint
   * folders): none of it is ever read, and a resumed run should not carry it along.
   */
  async removeStaleTemporaries(): Promise<void> {
    for (const entry of await readdir(this.dir, { withFileTypes: true })) {
      if (entry.isFile() && ATOMIC_TEMPORARY.test(entry.name)) await rm(this.path(entry.name), { force: true })
      if (entry.isDirectory() && entry.name.startsWith('ckpt-')) {
        for (const inner of await readdir(this.path(entry.name))) {
          if (ATOMIC_TEMPORARY.test(inner)) await rm(join(this.path(entry.name), inner), { force: true })
        }
      }
    }
  }

  writeOutcome(outcome: Omit<RunOutcome, 'at'>): Promise<void> {
    return writeFileAtomic(this.path('outcome.json'), JSON.stringify({ ...outcome, at: new Date().toISOString() }, null, 1))
  }

  /** outcome.json, or null when the run has none (it was killed while training, or is training now). */
  readOutcome(): Promise<RunOutcome | null> {
    return readFile(this.path('outcome.json'), 'utf8').then(JSON.parse, () => null)
  }

  writeHistory(history: EpochSummary[]): Promise<void> {
    return writeFileAtomic(this.path('history.json'), JSON.stringify(history, null, 1))
  }

  writeMetrics(metrics: ModelMetrics): Promise<void> {
    return writeFileAtomic(this.path('metrics.json'), JSON.stringify(metrics, null, 1))
  }

  /** metrics.json, or null when the run has none (or one this version cannot read). */
  async readMetrics(): Promise<ModelMetrics | null> {
    try {
      const metrics = JSON.parse(await readFile(this.path('metrics.json'), 'utf8')) as ModelMetrics
      return metrics && typeof metrics.health === 'object' && Array.isArray(metrics.warnings) ? metrics : null
    } catch {
      return null
    }
  }

  /** latents-<space>.f32 (float32, n x dim, little-endian) and latents.json describing them (and the weights' digest). */
  async writeLatents(latents: Latents, count: number, weights?: string): Promise<void> {
    const spaces: Record<string, { dim: number; file: string }> = {}
    for (const [name, { dim, values }] of latents) {
      const file = `latents-${name}.f32`
      await writeFileAtomic(this.path(file), new Uint8Array(values.buffer, values.byteOffset, values.byteLength))
      spaces[name] = { dim, file }
    }
    await writeFileAtomic(this.path('latents.json'), JSON.stringify({ count, spaces, ...(weights ? { weights } : {}) }, null, 1))
  }

  /** The stored latents (writeLatents' files), checked against the item count they claim. */
  async readLatents(): Promise<{ count: number; latents: Latents; weights: string | null }> {
    let described: { count: number; spaces: Record<string, { dim: number; file: string }>; weights?: string }
    try {
      described = JSON.parse(await readFile(this.path('latents.json'), 'utf8'))
    } catch (error) {
      throw new Error(
        `${this.path('latents.json')}: no stored latents (${(error as Error).message.split('\n')[0]}); open the model in the app or train it to the end first`
      )
    }
    const latents: Latents = new Map()
    for (const [space, { dim, file }] of Object.entries(described.spaces ?? {})) {
      if (!/^latents-[\w-]+\.f32$/.test(file)) throw new Error(`latents.json names a file outside its run: ${file}`)
      const bytes = await readFile(this.path(file))
      if (bytes.byteLength !== described.count * dim * 4)
        throw new Error(`${this.path(file)}: ${bytes.byteLength} bytes, not ${described.count} items x ${dim} float32 values`)
      latents.set(space, { dim, values: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) })
    }
    return { count: described.count, latents, weights: typeof described.weights === 'string' ? described.weights : null }
  }

  writeProjection(space: string, projection: LatentProjection): Promise<void> {
    return writeFileAtomic(this.path(projectionFile(space)), projection.toBytes())
  }

  /** The stored map of `space` (null when it has none or the file cannot be read). */
  async readProjection(space: string): Promise<LatentProjection | null> {
    try {
      return LatentProjection.fromBytes(new Uint8Array(await readFile(this.path(projectionFile(space)))))
    } catch {
      return null
    }
  }

  /** The UMAP settings the stored map of `space` was made with (null when it has none). */
  async storedProjectionSettings(space: string): Promise<ProjectionSettings | null> {
    const projection = await this.readProjection(space)
    if (!projection) return null
    const { nNeighbors, minDist, seed, nComponents } = projection.options
    return { nNeighbors, minDist, seed, nComponents }
  }

  /** The stored map of `space` if it was made from exactly these latents with these settings (else null). */
  async matchingProjection(space: string, latents: Float32Array, settings: ProjectionSettings): Promise<LatentProjection | null> {
    const projection = await this.readProjection(space)
    if (!projection) return null
    const o = projection.options
    if (o.nNeighbors !== settings.nNeighbors || o.minDist !== settings.minDist || o.seed !== settings.seed || o.nComponents !== settings.nComponents)
      return null
    const stored = projection.latents
    if (stored.length !== latents.length) return null
    for (let i = 0; i < stored.length; i++) if (stored[i] !== latents[i]) return null
    return projection
  }

  /** Where exports go: exports/ of the run, or exports/<subfolder> for a selection. */
  exportsDir(subfolder?: string): string {
    return subfolder ? join(this.dir, 'exports', subfolder) : join(this.dir, 'exports')
  }
}

export const projectionFile = (space: string): string => `projection-${space}.bin`
