// Batches from a uint8 dataset: the whole set stays uint8 and only one batch at a time becomes
// float32 in [0, 1] (optionally binarised, as the benchmark's reference does with x > 0.5).
import * as tf from '@tensorflow/tfjs'
import type { ImageShape } from './blocks'

export interface TrainingData {
  shape: ImageShape
  /** n * h * w * c bytes, HWC per item. */
  pixels: Uint8Array
  labels: Int32Array | null
  numClasses: number
  trainIndices: Int32Array
  heldOutIndices: Int32Array
  /** Binarise pixels at 0.5 (x > 127), as torch_reference.py does. */
  binarize?: boolean
}

export interface Batch {
  x: tf.Tensor4D
  labels: tf.Tensor1D | null
}

export function makeBatch(data: TrainingData, indices: ArrayLike<number>): Batch {
  const { height, width, channels } = data.shape
  const k = height * width * channels
  const n = indices.length
  const values = new Float32Array(n * k)
  const scale = 1 / 255
  for (let i = 0; i < n; i++) {
    const offset = indices[i] * k
    const row = data.pixels.subarray(offset, offset + k)
    const target = i * k
    if (data.binarize) for (let j = 0; j < k; j++) values[target + j] = row[j] > 127 ? 1 : 0
    else for (let j = 0; j < k; j++) values[target + j] = row[j] * scale
  }
  const x = tf.tensor4d(values, [n, height, width, channels])
  let labels: tf.Tensor1D | null = null
  if (data.labels) {
    const batchLabels = new Int32Array(n)
    for (let i = 0; i < n; i++) batchLabels[i] = data.labels[indices[i]]
    labels = tf.tensor1d(batchLabels, 'int32')
  }
  return { x, labels }
}

/** A small seeded PRNG (mulberry32): shuffles are reproducible from the run's seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Fisher-Yates shuffle in place (arrays and typed arrays alike). */
export function shuffleInPlace<A extends { length: number; [index: number]: unknown }>(items: A, random: () => number): A {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const swap = items[i]
    items[i] = items[j]
    items[j] = swap
  }
  return items
}

export function shuffled(indices: Int32Array, seed: number): Int32Array {
  return shuffleInPlace(indices.slice(), seededRandom(seed))
}
