// What the app and the CLI share about a training run: the training view of a dataset, the
// model config for a "latent size", encoding every item, and the files a run writes.
import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { basename, dirname, join, resolve } from 'node:path'
import * as tf from '@tensorflow/tfjs'
import { defaultModelConfig, type ModelConfig, type ModelFamily, type VaeFamilyModel } from '../../models/index'
import { makeBatch, type TrainingData } from '../../models/data'
import { argmaxAccuracy, knnClassAccuracy, latentWarnings, type ModelMetrics } from '../../models/metrics'
import { importanceWeightedBound, IWAE_SAMPLES } from '../../models/iwae'
import { readAndDispose } from '../../models/readback'
import { evaluateWithHealth, type EpochSummary, type TrainOptions } from '../../models/train'
import type { ImageDataset } from './datasets/types'
import { loadLatestCheckpointDocument, writeFileAtomic } from './storage'
import { LatentProjection } from './projection/index'
import { bytesToBase64, type ObjectiveArgs, type ProjectionSettings, type RunComparison, type RunListing, type ThumbnailAtlas } from '../common/contract'

/** Where the app keeps runs and the dataset cache (the desktop app passes its own userData folder). */
export function defaultDataDir(): string {
  return process.env.CARTOGRAPHER_DATA_DIR ?? join(process.env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'latent-cartographer')
}

export function trainingData(dataset: ImageDataset, maxTrainItems?: number): TrainingData {
  const train: number[] = []
  const heldOut: number[] = []
  dataset.split.forEach((s, i) => (s ? heldOut : train).push(i))
  return {
    shape: { height: dataset.height, width: dataset.width, channels: dataset.channels },
    pixels: dataset.pixels,
    labels: dataset.labels,
    numClasses: dataset.classNames.length,
    trainIndices: Int32Array.from(maxTrainItems ? train.slice(0, maxTrainItems) : train),
    heldOutIndices: Int32Array.from(heldOut)
  }
}

export const isLabelled = (dataset: ImageDataset): boolean => dataset.labels !== null && dataset.classNames.length > 1

/** One "latent size" knob spread over a family's spaces (SRVAE: u gets half of z's; CDVAE: split in two). */
export function latentDimsFor(family: ModelFamily, size: number): Record<string, number> {
  if (family === 'vae') return { z: size }
  if (family === 'srvae') return { u: Math.max(2, size >> 1), z: size }
  const labelled = Math.max(1, size >> 1)
  return { z_l: labelled, z_u: Math.max(1, size - labelled) }
}

export function modelConfigFor(
  dataset: ImageDataset,
  family: ModelFamily,
  options: { seed: number; latentDim?: number; conditionalPrior?: boolean; objective?: ObjectiveArgs }
): ModelConfig {
  const labelled = isLabelled(dataset)
  if (family === 'cdvae' && !labelled) {
    throw new Error('the CDVAE learns a prior per class and needs labelled data (class subfolders, IDX labels or labels.csv)')
  }
  if (options.conditionalPrior && !labelled) throw new Error('a class-conditional prior needs labelled data with at least two classes')
  const config = defaultModelConfig(family, { height: dataset.height, width: dataset.width, channels: dataset.channels }, labelled ? dataset.classNames.length : 0, {
    seed: options.seed,
    conditionalPrior: options.conditionalPrior ?? false
  })
  if (options.latentDim) config.latentDims = latentDimsFor(family, options.latentDim)
  const asked = options.objective ?? {}
  const spaces = Object.keys(config.latentDims)
  for (const space of Object.keys(asked.klWeights ?? {})) {
    if (!spaces.includes(space)) throw new Error(`a KL weight for "${space}": the ${family.toUpperCase()} has no such latent space (it has ${spaces.join(', ')})`)
  }
  if (asked.freeSpaceIndependence && family !== 'cdvae') throw new Error('the class-independence term applies to the CDVAE\'s z_u only')
  if (asked.freeSpaceAdversary && family !== 'cdvae') throw new Error('the class adversary applies to the CDVAE\'s z_u only')
  const base = config.objective
  config.objective = {
    klWeights: { ...base.klWeights, ...asked.klWeights },
    freeBits: asked.freeBits ?? base.freeBits,
    warmupSteps: asked.warmupSteps ?? base.warmupSteps,
    freeSpaceIndependence: asked.freeSpaceIndependence ?? base.freeSpaceIndependence,
    freeSpaceAdversary: asked.freeSpaceAdversary ?? base.freeSpaceAdversary
  }
  return config
}

/** Posterior means of every item in every space, in item order. */
export async function encodeAll(
  model: VaeFamilyModel,
  dataset: ImageDataset,
  onProgress?: (done: number, total: number) => void,
  batchSize = 500
): Promise<Map<string, { dim: number; values: Float32Array }>> {
  const n = dataset.split.length
  const { width, height, channels } = dataset
  const k = width * height * channels
  const latents = new Map(model.spaces.map((s) => [s.name, { dim: s.dim, values: new Float32Array(n * s.dim) }]))
  for (let from = 0; from < n; from += batchSize) {
    const count = Math.min(batchSize, n - from)
    const encoded = await readAndDispose(
      tf.tidy(() => {
        const x = tf.tensor4d(dataset.pixels.subarray(from * k, (from + count) * k), [count, height, width, channels]).toFloat().div(255) as tf.Tensor4D
        return model.encode(x) as Record<string, tf.Tensor>
      })
    )
    for (const [name, values] of Object.entries(encoded)) {
      const target = latents.get(name)
      if (target) target.values.set(values, from * target.dim)
    }
    onProgress?.(from + count, n)
    await new Promise((resolve) => setTimeout(resolve, 0))
  }
  return latents
}

/** Held-out items a 5-NN figure asks about (evenly spread, so the figure is reproducible). */
const KNN_QUERIES = 2000

/**
 * What a trained model learned, on the held-out items: the ELBO's terms and each space's health,
 * 5-NN class accuracy per space against the training items, the free classifier, and the warnings
 * they raise. `latents` are encodeAll's.
 */
export async function measureModel(
  model: VaeFamilyModel,
  dataset: ImageDataset,
  latents: Map<string, { dim: number; values: Float32Array }>,
  options: { iwaeItems?: number; onIwaeProgress?: (done: number, total: number) => void } = {}
): Promise<ModelMetrics> {
  const data = trainingData(dataset)
  const { values: heldOut, health } = await evaluateWithHealth(model, data, data.heldOutIndices, 500, 17)
  // K = 100 importance samples on (up to) IWAE_ITEMS held-out items, spread over the split.
  const iwaeItems = spread(data.heldOutIndices, options.iwaeItems ?? IWAE_ITEMS)
  const iwae = iwaeItems.length ? await importanceWeightedBound(model, data, iwaeItems, { samples: IWAE_SAMPLES, seed: 29, onProgress: options.onIwaeProgress }) : null
  const knn5: Record<string, number> = {}
  let chance: number | null = null
  let freeClassifierAccuracy: number | null = null
  const labels = dataset.labels
  if (labels && isLabelled(dataset) && data.heldOutIndices.length > 0 && data.trainIndices.length > 0) {
    const held = data.heldOutIndices
    const stride = Math.max(1, held.length / KNN_QUERIES)
    const queries = Int32Array.from({ length: Math.min(KNN_QUERIES, held.length) }, (_, i) => held[Math.floor(i * stride)])
    const counts = new Map<number, number>()
    for (const i of held) counts.set(labels[i], (counts.get(labels[i]) ?? 0) + 1)
    chance = Math.max(...counts.values()) / held.length
    const rows = (values: Float32Array, dim: number, items: Int32Array) => {
      const out = new Float32Array(items.length * dim)
      items.forEach((item, r) => out.set(values.subarray(item * dim, (item + 1) * dim), r * dim))
      return out
    }
    for (const [space, { dim, values }] of latents) {
      knn5[space] = await knnClassAccuracy(rows(values, dim, queries), Array.from(queries, (i) => labels[i]), rows(values, dim, data.trainIndices), Array.from(data.trainIndices, (i) => labels[i]), dim, 5)
      await new Promise((resolve) => setTimeout(resolve, 0))
    }
    if (model.conditionalSpace !== null) {
      let correct = 0
      for (let from = 0; from < held.length; from += 500) {
        const batch = makeBatch(data, held.subarray(from, from + 500))
        const scores = model.classLogLikelihoods(batch.x)
        try {
          if (scores) correct += (await argmaxAccuracy(scores, Array.from(held.subarray(from, from + 500), (i) => labels[i]))) * batch.x.shape[0]
        } finally {
          tf.dispose([batch.x, batch.labels ?? [], scores ?? []])
        }
      }
      freeClassifierAccuracy = correct / held.length
    }
  }
  return { heldOut, health, knn5, chance, freeClassifierAccuracy, iwae, warnings: latentWarnings(health, knn5, model.freeSpace, chance) }
}

/**
 * Held-out items the importance-weighted bound is measured on: its K forward passes per item make
 * it the slowest measure (500 items x 100 samples: about half a minute on two CPU cores).
 */
export const IWAE_ITEMS = 500

/** `count` items of `items`, evenly spaced (all of them when there are fewer). */
function spread(items: Int32Array, count: number): Int32Array {
  if (items.length <= count) return items
  const stride = items.length / count
  return Int32Array.from({ length: count }, (_, i) => items[Math.floor(i * stride)])
}

/** A run's stored metrics.json, or null when it has none (or one this version cannot read). */
export async function readMetrics(runDir: string): Promise<ModelMetrics | null> {
  try {
    const metrics = JSON.parse(await readFile(join(runDir, 'metrics.json'), 'utf8')) as ModelMetrics
    return metrics && typeof metrics.health === 'object' && Array.isArray(metrics.warnings) ? metrics : null
  } catch {
    return null
  }
}

/**
 * A digest of a model's weights (SHA-256 over every parameter's name and float32 bytes, in name
 * order): latents stored with a run are reused on reopening only when they were encoded by exactly
 * these weights, not whatever the latest checkpoint pointer says.
 */
export async function weightsDigest(model: VaeFamilyModel): Promise<string> {
  const hash = createHash('sha256')
  const entries = [...model.parameters.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  for (const [name, variable] of entries) {
    const values = (await variable.data()) as Float32Array
    hash.update(name)
    hash.update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength))
  }
  return hash.digest('hex')
}

/** latents-<space>.f32 (float32, n x dim, little-endian) and latents.json describing them (and the weights' digest). */
export async function writeLatents(runDir: string, latents: Map<string, { dim: number; values: Float32Array }>, count: number, weights?: string): Promise<void> {
  const spaces: Record<string, { dim: number; file: string }> = {}
  for (const [name, { dim, values }] of latents) {
    const file = `latents-${name}.f32`
    await writeFileAtomic(join(runDir, file), new Uint8Array(values.buffer, values.byteOffset, values.byteLength))
    spaces[name] = { dim, file }
  }
  await writeFileAtomic(join(runDir, 'latents.json'), JSON.stringify({ count, spaces, ...(weights ? { weights } : {}) }, null, 1))
}

/** A run's stored latents (writeLatents' files), checked against the item count they claim. */
export async function readLatents(runDir: string): Promise<{ count: number; latents: Map<string, { dim: number; values: Float32Array }>; weights: string | null }> {
  let described: { count: number; spaces: Record<string, { dim: number; file: string }>; weights?: string }
  try {
    described = JSON.parse(await readFile(join(runDir, 'latents.json'), 'utf8'))
  } catch (error) {
    throw new Error(`${join(runDir, 'latents.json')}: no stored latents (${(error as Error).message.split('\n')[0]}); open the model in the app or train it to the end first`)
  }
  const latents = new Map<string, { dim: number; values: Float32Array }>()
  for (const [space, { dim, file }] of Object.entries(described.spaces ?? {})) {
    if (!/^latents-[\w-]+\.f32$/.test(file)) throw new Error(`latents.json names a file outside its run: ${file}`)
    const bytes = await readFile(join(runDir, file))
    if (bytes.byteLength !== described.count * dim * 4) throw new Error(`${join(runDir, file)}: ${bytes.byteLength} bytes, not ${described.count} items x ${dim} float32 values`)
    latents.set(space, { dim, values: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)) })
  }
  return { count: described.count, latents, weights: typeof described.weights === 'string' ? described.weights : null }
}

/** The generated shapes set has no folder: a run trained on it reopens with the built-in dataset. */
export const isGeneratedSource = (source: string): boolean => source.startsWith('generated shapes')

export const projectionFile = (space: string): string => `projection-${space}.bin`

/** The UMAP settings a run's stored map of `space` was made with (null when it has none). */
export async function storedProjectionSettings(runDir: string, space: string): Promise<ProjectionSettings | null> {
  try {
    const { options } = LatentProjection.fromBytes(new Uint8Array(await readFile(join(runDir, projectionFile(space)))))
    return { nNeighbors: options.nNeighbors, minDist: options.minDist, seed: options.seed, nComponents: options.nComponents }
  } catch {
    return null
  }
}

/** A projection stored with a run, if it was made from exactly these latents (else null). */
export async function loadStoredProjection(
  runDir: string,
  space: string,
  latents: Float32Array,
  settings: ProjectionSettings
): Promise<LatentProjection | null> {
  try {
    const projection = LatentProjection.fromBytes(new Uint8Array(await readFile(join(runDir, projectionFile(space)))))
    const o = projection.options
    if (o.nNeighbors !== settings.nNeighbors || o.minDist !== settings.minDist || o.seed !== settings.seed || o.nComponents !== settings.nComponents) return null
    const stored = projection.latents
    if (stored.length !== latents.length) return null
    for (let i = 0; i < stored.length; i++) if (stored[i] !== latents[i]) return null
    return projection
  } catch {
    return null
  }
}

/** run.json: what a run was started with (the app and the CLI write the same). */
export interface RunRecord {
  config: ModelConfig
  options: TrainOptions
  dataset: string
  /** The cap on training items it was started with, if any. */
  maxTrainItems?: number
  /** The name the user gave the run (run.rename). */
  title?: string
}

/** outcome.json: how a run's last training ended. A run without one was killed while training. */
export interface RunOutcome {
  state: 'finished' | 'interrupted' | 'failed'
  message: string
  at: string
}

export async function readRunRecord(runDir: string): Promise<RunRecord> {
  let record: RunRecord
  try {
    record = JSON.parse(await readFile(join(runDir, 'run.json'), 'utf8')) as RunRecord
  } catch (error) {
    throw new Error(`${runDir} is not a trained model's folder (no readable run.json: ${(error as Error).message})`)
  }
  if (!record?.config?.family || typeof record.dataset !== 'string') throw new Error(`${join(runDir, 'run.json')} lacks the model config or the dataset`)
  return record
}

/** Throws unless `dataset` is what a model of `config` was trained on: image shape and classes. */
export function checkDatasetFits(config: ModelConfig, dataset: ImageDataset): void {
  const { height, width, channels } = config.image
  if (height !== dataset.height || width !== dataset.width || channels !== dataset.channels) {
    throw new Error(`the model expects ${width}x${height}x${channels} images but the dataset loads as ${dataset.width}x${dataset.height}x${dataset.channels}`)
  }
  if (config.numClasses > 0 && config.numClasses !== dataset.classNames.length) {
    throw new Error(`the model was trained on ${config.numClasses} classes but the dataset has ${dataset.classNames.length}`)
  }
}

export async function writeRunOutcome(runDir: string, outcome: Omit<RunOutcome, 'at'>): Promise<void> {
  await writeFileAtomic(join(runDir, 'outcome.json'), JSON.stringify({ ...outcome, at: new Date().toISOString() }, null, 1))
}

/** Runs under `runsDir` that have a checkpoint, newest first; `active` is the folder training now. */
export async function listRuns(runsDir: string, active: string | null = null): Promise<RunListing[]> {
  let names: string[]
  try {
    names = await readdir(runsDir)
  } catch {
    return []
  }
  const runs: RunListing[] = []
  for (const name of names) {
    try {
      const dir = join(runsDir, name)
      const run = await readRunRecord(dir)
      const latest = JSON.parse(await readFile(join(dir, 'latest.json'), 'utf8')) as { savedAt: string; step: number }
      const outcome = (await readFile(join(dir, 'outcome.json'), 'utf8').then(JSON.parse, () => null)) as RunOutcome | null
      const checkpoint = await loadLatestCheckpointDocument(dir)
      if (!checkpoint) continue
      const epochsDone = checkpoint.position?.epoch ?? 0
      const epochsPlanned = run.options?.epochs ?? epochsDone
      const state: RunListing['state'] =
        dir === active ? 'training' : outcome?.state === 'failed' ? 'failed' : epochsDone >= epochsPlanned ? 'finished' : 'interrupted'
      const heldOut = (checkpoint.meta?.history as EpochSummary[] | undefined)?.at(-1)?.heldOut.total
      runs.push({
        path: dir,
        name,
        family: run.config.family,
        dataset: run.dataset,
        savedAt: latest.savedAt,
        step: latest.step,
        state,
        epochsDone,
        epochsPlanned,
        latentDims: run.config.latentDims,
        heldOutNegElbo: typeof heldOut === 'number' ? heldOut : null,
        title: typeof run.title === 'string' && run.title ? run.title : null
      })
    } catch {
      // A run without run.json or a checkpoint (stopped before its first save) is not listed.
    }
  }
  return runs.sort((a, b) => b.savedAt.localeCompare(a.savedAt))
}

/**
 * `path` as a run folder of the app's own runs folder (a direct child holding run.json), for the
 * requests that change or delete a run: nothing outside the app's data is renamed or removed.
 */
export async function ownRunFolder(runsDir: string, path: string): Promise<string> {
  const dir = resolve(path)
  if (dirname(dir) !== resolve(runsDir)) throw new Error(`${dir} is not one of the app's runs (in ${runsDir}): only those can be renamed or deleted here`)
  await readRunRecord(dir)
  return dir
}

/** Gives a run a name (run.json's title; empty clears it). */
export async function renameRun(runDir: string, title: string): Promise<void> {
  const record = JSON.parse(await readFile(join(runDir, 'run.json'), 'utf8')) as RunRecord
  const trimmed = title.trim()
  if (trimmed) record.title = trimmed
  else delete record.title
  await writeFileAtomic(join(runDir, 'run.json'), JSON.stringify(record, null, 1))
}

/** A run's curves by epoch and figures, for runs.compare. */
export async function compareRun(path: string): Promise<RunComparison> {
  const dir = resolve(path)
  const record = await readRunRecord(dir)
  const document = await loadLatestCheckpointDocument(dir)
  const history = ((document?.meta.history as EpochSummary[] | undefined) ?? []).map(({ epoch, heldOut }) => ({ epoch, heldOut }))
  return {
    path: dir,
    title: record.title ?? null,
    name: basename(dir),
    family: record.config.family,
    dataset: record.dataset,
    latentDims: record.config.latentDims,
    epochsDone: document?.position?.epoch ?? history.length,
    epochs: history,
    metrics: await readMetrics(dir)
  }
}

/** Most bytes an atlas may hold before thumbnails are downsampled (2x, 4x...). */
const ATLAS_BUDGET_BYTES = 24 * 2 ** 20

/** Every item's thumbnail, downsampled by striding when the whole set would not fit the budget. */
export function thumbnailAtlas(dataset: ImageDataset): ThumbnailAtlas {
  const { width, height, channels, pixels } = dataset
  const n = dataset.split.length
  let downsample = 1
  while (n * Math.ceil(width / downsample) * Math.ceil(height / downsample) * channels > ATLAS_BUDGET_BYTES && downsample < 16) downsample *= 2
  if (downsample === 1) return { count: n, cellWidth: width, cellHeight: height, channels, downsample, base64: bytesToBase64(pixels) }
  const cellWidth = Math.ceil(width / downsample)
  const cellHeight = Math.ceil(height / downsample)
  const out = new Uint8Array(n * cellWidth * cellHeight * channels)
  let o = 0
  for (let i = 0; i < n; i++) {
    const base = i * width * height * channels
    for (let y = 0; y < height; y += downsample)
      for (let x = 0; x < width; x += downsample)
        for (let c = 0; c < channels; c++) out[o++] = pixels[base + (y * width + x) * channels + c]
  }
  return { count: n, cellWidth, cellHeight, channels, downsample, base64: bytesToBase64(out) }
}
