// The importance-weighted bound (Burda, Grosse and Salakhutdinov 2016): with K draws z_k ~ q(z | x),
//   log p(x) >= L_K(x) = log (1/K) sum_k p(x, z_k) / q(z_k | x),
// L_1 is the ELBO, L_K grows with K and tends to log p(x). Reported beside the ELBO, it says how
// much of the ELBO's gap is the posterior approximation's and how much the model's.
import * as tf from '@tensorflow/tfjs'
import { makeBatch, type TrainingData } from './data'
import { readOne } from './readback'
import type { VaeFamilyModel } from './types'

/** The default number of importance samples (issue 13: K = 100 on held-out items). */
export const IWAE_SAMPLES = 100

export interface ImportanceWeightedBound {
  samples: number
  items: number
  /** -L_K averaged over the items, nats: an upper bound on -log p(x), tighter than the -ELBO. */
  negLogLikelihood: number
  /** Its standard error over the items (the spread of -L_K(x) / sqrt(items)). */
  standardError: number
  bitsPerDim: number
}

/**
 * L_K per item from a function that gives one draw's log weights for the batch, [n], for a seed.
 * Draws are taken `chunk` at a time and reduced by a running log-sum-exp, so memory does not grow
 * with K. Seeds are seed, seed + 1, ..., seed + K - 1.
 */
export async function importanceWeightedLogLikelihoods(logWeight: (seed: number) => tf.Tensor1D, samples: number, seed: number): Promise<Float64Array> {
  if (!Number.isInteger(samples) || samples < 1) throw new Error(`the importance-weighted bound needs at least one sample, got ${samples}`)
  let running: tf.Tensor1D | null = null
  try {
    for (let k = 0; k < samples; k++) {
      const next: tf.Tensor1D = tf.tidy(() => {
        const w = logWeight(seed + k)
        // log(exp(a) + exp(b)) for the running sum a and this draw b, stably.
        return running ? (tf.stack([running, w]).logSumExp(0) as tf.Tensor1D) : w.clone()
      })
      running?.dispose()
      running = next
      // Let the event loop breathe every few draws (a window waits on the same thread).
      if (k % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 0))
    }
    const total = running as tf.Tensor1D
    running = null
    const values = await readOne(tf.tidy(() => total.sub(Math.log(samples))))
    total.dispose()
    return Float64Array.from(values)
  } finally {
    running?.dispose()
  }
}

/** The K-sample bound of a model over some items, in batches; labels go to class-conditional priors. */
export async function importanceWeightedBound(
  model: VaeFamilyModel,
  data: TrainingData,
  indices: ArrayLike<number>,
  options: { samples?: number; seed?: number; batchSize?: number; onProgress?: (done: number, total: number) => void } = {}
): Promise<ImportanceWeightedBound> {
  const samples = options.samples ?? IWAE_SAMPLES
  const seed = options.seed ?? 1
  const batchSize = options.batchSize ?? 250
  const perItem: number[] = []
  for (let from = 0; from < indices.length; from += batchSize) {
    const batch = makeBatch(data, Array.from(indices).slice(from, from + batchSize))
    try {
      const bound = await importanceWeightedLogLikelihoods((s) => model.logImportanceWeight(batch.x, batch.labels, s), samples, seed + from * samples)
      for (const v of bound) perItem.push(-v)
    } finally {
      tf.dispose([batch.x, batch.labels ?? []])
    }
    options.onProgress?.(Math.min(from + batchSize, indices.length), indices.length)
  }
  const n = perItem.length
  const mean = perItem.reduce((sum, v) => sum + v, 0) / n
  const variance = n > 1 ? perItem.reduce((sum, v) => sum + (v - mean) ** 2, 0) / (n - 1) : 0
  const dims = data.shape.height * data.shape.width * data.shape.channels
  return { samples, items: n, negLogLikelihood: mean, standardError: Math.sqrt(variance / n), bitsPerDim: mean / (dims * Math.LN2) }
}
