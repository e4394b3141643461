// What a trained model learned, measured on the dataset: every item's posterior means, the
// held-out ELBO and each space's health, 5-NN class accuracy per space, the free classifier and
// the importance-weighted bound; and a digest naming the weights that encoded stored latents.
import { createHash } from 'node:crypto'
import * as tf from '@tensorflow/tfjs'
import { elementAt } from '../../../models/arrays'
import type { VaeFamilyModel } from '../../../models/index'
import { makeBatch } from '../../../models/data'
import { argmaxAccuracy, knnClassAccuracy, latentWarnings, type ModelMetrics } from '../../../models/metrics'
import { importanceWeightedBound, IWAE_SAMPLES } from '../../../models/iwae'
import { readAndDispose } from '../../../models/readback'
import { evaluateWithHealth } from '../../../models/train'
import { pixelRangeTensor } from '../datasets/items'
import type { ImageDataset } from '../datasets/types'
import { isLabelled, trainingData } from './config'
import type { Latents } from './folder'

/** Posterior means of every item in every space, in item order. */
export async function encodeAll(
  model: VaeFamilyModel,
  dataset: ImageDataset,
  onProgress?: (done: number, total: number) => void,
  batchSize = 500
): Promise<Latents> {
  const n = dataset.split.length
  const latents: Latents = new Map(model.spaces.map((s) => [s.name, { dim: s.dim, values: new Float32Array(n * s.dim) }]))
  for (let from = 0; from < n; from += batchSize) {
    const count = Math.min(batchSize, n - from)
    const encoded = await readAndDispose(tf.tidy(() => model.encode(pixelRangeTensor(dataset.pixels, dataset, from, count)) as Record<string, tf.Tensor>))
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

/** The held-out items every 5-NN class accuracy asks about: up to KNN_QUERIES, evenly spread. */
export function knnQueryItems(heldOut: Int32Array): Int32Array {
  const stride = Math.max(1, heldOut.length / KNN_QUERIES)
  return Int32Array.from({ length: Math.min(KNN_QUERIES, heldOut.length) }, (_, i) => elementAt(heldOut, Math.floor(i * stride)))
}

/**
 * What a trained model learned, on the held-out items: the ELBO's terms and each space's health,
 * 5-NN class accuracy per space against the training items, the free classifier, and the warnings
 * they raise. `latents` are encodeAll's.
 */
export async function measureModel(
  model: VaeFamilyModel,
  dataset: ImageDataset,
  latents: Latents,
  options: { iwaeItems?: number; onIwaeProgress?: (done: number, total: number) => void } = {}
): Promise<ModelMetrics> {
  const data = trainingData(dataset)
  const { values: heldOut, health } = await evaluateWithHealth(model, data, data.heldOutIndices, 500, 17)
  // K = 100 importance samples on (up to) IWAE_ITEMS held-out items, spread over the split.
  const iwaeItems = spread(data.heldOutIndices, options.iwaeItems ?? IWAE_ITEMS)
  const iwae = iwaeItems.length
    ? await importanceWeightedBound(model, data, iwaeItems, { samples: IWAE_SAMPLES, seed: 29, onProgress: options.onIwaeProgress })
    : null
  const knn5: Record<string, number> = {}
  let chance: number | null = null
  let freeClassifierAccuracy: number | null = null
  const labels = dataset.labels
  if (labels && isLabelled(dataset) && data.heldOutIndices.length > 0 && data.trainIndices.length > 0) {
    const held = data.heldOutIndices
    const queries = knnQueryItems(held)
    const labelOf = (item: number) => elementAt(labels, item)
    const counts = new Map<number, number>()
    for (const i of held) counts.set(labelOf(i), (counts.get(labelOf(i)) ?? 0) + 1)
    chance = Math.max(...counts.values()) / held.length
    const rows = (values: Float32Array, dim: number, items: Int32Array) => {
      const out = new Float32Array(items.length * dim)
      items.forEach((item, r) => out.set(values.subarray(item * dim, (item + 1) * dim), r * dim))
      return out
    }
    for (const [space, { dim, values }] of latents) {
      knn5[space] = await knnClassAccuracy(
        rows(values, dim, queries),
        Array.from(queries, labelOf),
        rows(values, dim, data.trainIndices),
        Array.from(data.trainIndices, labelOf),
        dim,
        5
      )
      await new Promise((resolve) => setTimeout(resolve, 0))
    }
    if (model.conditionalSpace !== null) {
      let correct = 0
      for (let from = 0; from < held.length; from += 500) {
        const batch = makeBatch(data, held.subarray(from, from + 500))
        const scores = model.classLogLikelihoods(batch.x)
        try {
          if (scores) correct += (await argmaxAccuracy(scores, Array.from(held.subarray(from, from + 500), labelOf))) * batch.x.shape[0]
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
  return Int32Array.from({ length: count }, (_, i) => elementAt(items, Math.floor(i * stride)))
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
