// What the app and the CLI share about a training run: the training view of a dataset, the
// model config for a "latent size", encoding every item, and the files a run writes.
import { readdir, readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import { join } from 'node:path'
import * as tf from '@tensorflow/tfjs'
import { defaultModelConfig, type ModelConfig, type ModelFamily, type VaeFamilyModel } from '../../models/index'
import type { TrainingData } from '../../models/data'
import type { ImageDataset } from './datasets/types'
import { writeFileAtomic } from './storage'
import { LatentProjection } from './projection'
import { bytesToBase64, type ProjectionSettings, type RunListing, type ThumbnailAtlas } from '../common/contract'

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
  options: { seed: number; latentDim?: number; conditionalPrior?: boolean }
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
    const encoded = tf.tidy(() => {
      const x = tf.tensor4d(dataset.pixels.subarray(from * k, (from + count) * k), [count, height, width, channels]).toFloat().div(255) as tf.Tensor4D
      return Object.entries(model.encode(x)).map(([name, t]) => [name, t.dataSync() as Float32Array] as const)
    })
    for (const [name, values] of encoded) {
      const target = latents.get(name)
      if (target) target.values.set(values, from * target.dim)
    }
    onProgress?.(from + count, n)
    await new Promise((resolve) => setTimeout(resolve, 0))
  }
  return latents
}

/** latents-<space>.f32 (float32, n x dim, little-endian) and latents.json describing them. */
export async function writeLatents(runDir: string, latents: Map<string, { dim: number; values: Float32Array }>, count: number): Promise<void> {
  const spaces: Record<string, { dim: number; file: string }> = {}
  for (const [name, { dim, values }] of latents) {
    const file = `latents-${name}.f32`
    await writeFileAtomic(join(runDir, file), new Uint8Array(values.buffer, values.byteOffset, values.byteLength))
    spaces[name] = { dim, file }
  }
  await writeFileAtomic(join(runDir, 'latents.json'), JSON.stringify({ count, spaces }, null, 1))
}

/** The generated shapes set has no folder: a run trained on it reopens with the built-in dataset. */
export const isGeneratedSource = (source: string): boolean => source.startsWith('generated shapes')

export const projectionFile = (space: string): string => `projection-${space}.bin`

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

/** Runs under `runsDir` that have a checkpoint, newest first. */
export async function listRuns(runsDir: string): Promise<RunListing[]> {
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
      const run = JSON.parse(await readFile(join(dir, 'run.json'), 'utf8')) as { config: ModelConfig; dataset: string }
      const latest = JSON.parse(await readFile(join(dir, 'latest.json'), 'utf8')) as { savedAt: string; step: number }
      runs.push({ path: dir, name, family: run.config.family, dataset: run.dataset, savedAt: latest.savedAt, step: latest.step })
    } catch {
      // A run without run.json or a checkpoint (stopped before its first save) is not listed.
    }
  }
  return runs.sort((a, b) => b.savedAt.localeCompare(a.savedAt))
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
