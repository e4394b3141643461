// Batches from a uint8 dataset: the whole set stays uint8 and only one batch at a time becomes
// float32 in [0, 1] (optionally binarised, as the benchmark's reference does with x > 0.5).
import * as tf from '@tensorflow/tfjs'
import type { ImageShape } from './blocks'
import { seededRandom, shuffleInPlace } from './random'

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

export function shuffled(indices: Int32Array, seed: number): Int32Array {
  return shuffleInPlace(indices.slice(), seededRandom(seed))
}
