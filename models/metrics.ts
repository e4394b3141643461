// Figures about what a trained model learned, beyond its loss (models.md, "Evaluation that every
// model reports"): where the class lives among the latent spaces, and how well the class prior
// classifies. Pure tf on arrays the caller already has; no file system, no UI.
import * as tf from '@tensorflow/tfjs'
import type { ImportanceWeightedBound } from './iwae'
import { readOne } from './readback'
import type { LatentHealth } from './train'

/**
 * k-nearest-neighbour class accuracy of `queries` (held-out items) against `refs` (training items)
 * in one latent space, Euclidean, majority vote (a tie goes to the class that reached the top count first).
 * Row-major [n, dim] Float32Arrays. Distances in chunks of queries, so memory stays bounded.
 */
export async function knnClassAccuracy(
  queries: Float32Array,
  queryLabels: ArrayLike<number>,
  refs: Float32Array,
  refLabels: ArrayLike<number>,
  dim: number,
  k = 5
): Promise<number> {
  const nq = queries.length / dim
  const nr = refs.length / dim
  if (nq !== queryLabels.length || nr !== refLabels.length) throw new Error('knnClassAccuracy: labels do not match the points')
  if (nq === 0 || nr === 0) return Number.NaN
  const kk = Math.min(k, nr)
  const chunk = Math.max(1, Math.floor(4_000_000 / nr))
  const refTensor = tf.tensor2d(refs, [nr, dim])
  const refNorms = tf.tidy(() => refTensor.square().sum(1))
  // The references transposed once: a transposed matMul per chunk is slow on wasm.
  const refT = tf.tidy(() => refTensor.transpose())
  let correct = 0
  try {
    for (let from = 0; from < nq; from += chunk) {
      const count = Math.min(chunk, nq - from)
      const nearest = await readOne<Int32Array>(
        tf.tidy(() => {
          const q = tf.tensor2d(queries.subarray(from * dim, (from + count) * dim), [count, dim])
          // -||q - r||^2 up to the query's own norm, which does not change the order.
          const negDistance = q.matMul(refT).mul(2).sub(refNorms)
          return tf.topk(negDistance, kk).indices
        })
      )
      for (let i = 0; i < count; i++) {
        const votes = new Map<number, number>()
        let best = -1
        let bestVotes = 0
        for (let j = 0; j < kk; j++) {
          const label = refLabels[nearest[i * kk + j] ?? -1] ?? -1
          const v = (votes.get(label) ?? 0) + 1
          votes.set(label, v)
          if (v > bestVotes) {
            best = label
            bestVotes = v
          }
        }
        if (best === queryLabels[from + i]) correct++
      }
    }
  } finally {
    tf.dispose([refTensor, refNorms, refT])
  }
  return correct / nq
}

/** The share of items whose row maximum in `scores` ([n, C]) is their label. */
export async function argmaxAccuracy(scores: tf.Tensor2D, labels: ArrayLike<number>): Promise<number> {
  const predicted = await readOne<Int32Array>(scores.argMax(1))
  let correct = 0
  for (let i = 0; i < predicted.length; i++) if (predicted[i] === labels[i]) correct++
  return predicted.length ? correct / predicted.length : Number.NaN
}

/** What a run reports about its latent spaces once trained (run folder: metrics.json). */
export interface ModelMetrics {
  /** Held-out evaluation: every term of the negative ELBO (nats), bits_per_dim. */
  heldOut: Record<string, number>
  health: LatentHealth
  /** 5-NN class accuracy per space, held-out items against training items (labelled data). */
  knn5: Record<string, number>
  /** Chance level of knn5: the share of the most common class among the held-out items. */
  chance: number | null
  /** argmax_c log p(top latent = posterior mean | c) on held-out items (models with a class prior). */
  freeClassifierAccuracy: number | null
  /** The K-sample importance-weighted bound on held-out items (null in metrics of older runs). */
  iwae?: ImportanceWeightedBound | null
  warnings: string[]
}

/** Below this many nats (summed over dimensions) a space carries almost nothing. */
export const NEARLY_EMPTY_NATS = 0.5
/** Above this 5-NN class accuracy a free space (the CDVAE's z_u) holds the class it should not. */
export const CLASS_LEAK_ACCURACY = 0.4

/**
 * The warnings a researcher needs at a glance: spaces that carry almost nothing (posterior
 * collapse), and the class leaking into the free space of a model that has one.
 */
export function latentWarnings(health: LatentHealth, knn5: Record<string, number>, freeSpace: string | null, chance: number | null): string[] {
  const warnings: string[] = []
  for (const [space, h] of Object.entries(health)) {
    const nats = h.klPerDim.reduce((sum, v) => sum + v, 0)
    if (nats < NEARLY_EMPTY_NATS) {
      warnings.push(
        `${space} carries almost nothing: ${nats.toFixed(2)} nats, ${h.activeUnits} of ${h.klPerDim.length} dimensions active (posterior collapse); ` +
          'free bits or a KL warm-up may help'
      )
    } else if (h.activeUnits === 0) {
      // KL without activity: every item's posterior sits at the same place away from the prior
      // (early in training, or a class prior the encoder has not learned to follow yet).
      warnings.push(
        `${space} tells the items apart by nothing: its posterior means barely vary (0 of ${h.klPerDim.length} dimensions active), ` +
          `though its KL is ${nats.toFixed(2)} nats; it may need more training`
      )
    }
  }
  const leak = freeSpace === null ? undefined : knn5[freeSpace]
  if (freeSpace !== null && leak !== undefined && leak > CLASS_LEAK_ACCURACY) {
    warnings.push(
      `the class leaks into ${freeSpace}: its 5-NN class accuracy is ${(leak * 100).toFixed(0)}%` +
        `${chance === null ? '' : ` (chance ${(chance * 100).toFixed(0)}%)`}, so a class grid's rows may not keep one style`
    )
  }
  return warnings
}
