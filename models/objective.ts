// What training minimises, as distinct from what is reported. The reported loss is always
// models.md's negative ELBO with every weight 1 (`total`); the training objective may weigh each
// space's KL (beta), ramp the KL weights up from 0 over the first steps (KL warm-up) and spare each
// dimension's first nats (free bits). With the defaults below the two are the same thing.
import * as tf from '@tensorflow/tfjs'
import { stopGradient } from './distributions'
import type { LossResult } from './types'

export interface ObjectiveConfig {
  /** Weight of each latent space's KL in the training objective (a missing space: 1). */
  klWeights: Record<string, number>
  /** Nats per dimension of batch-mean KL that cost nothing (Kingma et al. 2016); 0 = off. */
  freeBits: number
  /** Steps over which the KL weights rise linearly from 0 to their value; 0 = off. */
  warmupSteps: number
  /**
   * Weight of the class-independence term on a model's free space (the CDVAE's z_u): the MMD
   * between each class's aggregate posterior q(z_u | c) and the prior N(0, I); 0 = off.
   */
  freeSpaceIndependence: number
  /**
   * Weight of the adversarial class term on the free space (the CDVAE's z_u): a small classifier
   * learns to tell the class from z_u's posterior means, and the encoder is charged this weight
   * times the cross-entropy between that classifier's guess and a uniform guess; 0 = off.
   */
  freeSpaceAdversary: number
}

/** The plain ELBO: every KL weight 1, no free bits, no warm-up. */
export const ELBO_OBJECTIVE: ObjectiveConfig = Object.freeze({
  klWeights: Object.freeze({}) as Record<string, number>,
  freeBits: 0,
  warmupSteps: 0,
  freeSpaceIndependence: 0,
  freeSpaceAdversary: 0
})

export const klWeightOf = (objective: ObjectiveConfig, space: string): number => objective.klWeights[space] ?? 1

/** The KL weights' warm-up factor at a training step (1 outside training: `step` undefined). */
export function warmupFactor(objective: ObjectiveConfig, step: number | undefined): number {
  if (step === undefined || objective.warmupSteps <= 0) return 1
  return Math.min(1, (step + 1) / objective.warmupSteps)
}

/**
 * A model's loss from its per-item likelihood terms and its per-item, per-dimension KL of every
 * latent space: the reported terms (batch means; `kl_<space>` summed over dimensions), their sum
 * `total` (the negative ELBO), the KL per dimension, and the training objective.
 */
export function assembleLoss(
  likelihood: Record<string, tf.Tensor1D>,
  klPerDim: Record<string, tf.Tensor2D>,
  objective: ObjectiveConfig,
  step?: number,
  /** Terms of the training objective only, already weighted (the free-space independence term). */
  regularizer?: tf.Scalar
): LossResult {
  const terms: Record<string, tf.Scalar> = {}
  const klMeans: Record<string, tf.Tensor1D> = {}
  let total: tf.Scalar | null = null
  let surrogate: tf.Scalar | null = null
  const add = (sum: tf.Scalar | null, value: tf.Scalar): tf.Scalar => (sum ? sum.add(value) : value)
  for (const [name, values] of Object.entries(likelihood)) {
    const mean = values.mean() as tf.Scalar
    terms[name] = mean
    total = add(total, mean)
    surrogate = add(surrogate, mean)
  }
  const warmup = warmupFactor(objective, step)
  for (const [space, perDim] of Object.entries(klPerDim)) {
    const meanPerDim = perDim.mean(0) as tf.Tensor1D
    klMeans[space] = meanPerDim
    const kl = meanPerDim.sum() as tf.Scalar
    terms[`kl_${space}`] = kl
    total = add(total, kl)
    const weight = klWeightOf(objective, space) * warmup
    if (weight === 0) continue
    // Free bits clamp the batch mean of each dimension, not each item's, so that a dimension is
    // spared only while the whole batch uses it little.
    const charged = objective.freeBits > 0 ? (tf.maximum(meanPerDim, objective.freeBits).sum() as tf.Scalar) : kl
    surrogate = add(surrogate, weight === 1 ? charged : charged.mul(weight))
  }
  if (regularizer) surrogate = add(surrogate, regularizer)
  if (!total || !surrogate) throw new Error('a loss needs at least one term')
  return { total, terms, objective: surrogate, klPerDim: klMeans }
}

export function describeObjective(objective: ObjectiveConfig): string {
  const parts = Object.entries(objective.klWeights)
    .filter(([, w]) => w !== 1)
    .map(([space, w]) => `KL(${space}) x${w}`)
  if (objective.freeBits > 0) parts.push(`free bits ${objective.freeBits} nats/dim`)
  if (objective.warmupSteps > 0) parts.push(`KL warm-up over ${objective.warmupSteps} steps`)
  if (objective.freeSpaceIndependence > 0) parts.push(`z_u class-independence ${objective.freeSpaceIndependence}`)
  if (objective.freeSpaceAdversary > 0) parts.push(`z_u class adversary ${objective.freeSpaceAdversary}`)
  return parts.length ? `${parts.join(', ')} (the reported loss stays the ELBO)` : 'the ELBO'
}

/**
 * The squared maximum mean discrepancy (Gretton et al. 2012; unbiased in the within-sample
 * terms, inverse multiquadratic kernel of scale 2 * dim as WAE-MMD uses) between each class's
 * samples of a space and samples of its prior N(0, I), averaged over the batch's items. Its
 * expectation is 0 exactly when every class's aggregate posterior q(z | c) is the prior, which the
 * CDVAE's generative model assumes of z_u (grids draw z_u ~ N(0, I) for every class). Classes with
 * fewer than two items in the batch are left out. `samples` [b, d]: reparameterised draws;
 * `prior` [m, d]: draws from N(0, I).
 */
export function classConditionalMmd(samples: tf.Tensor2D, labels: tf.Tensor1D, numClasses: number, prior: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const scale = 2 * samples.shape[1]
    const kernel = (a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor2D => {
      const squared = tf.relu(a.square().sum(1, true).add(b.square().sum(1, true).transpose()).sub(a.matMul(b.transpose()).mul(2)))
      return tf.scalar(scale).div(squared.add(scale)) as tf.Tensor2D
    }
    const members = tf.oneHot(labels.toInt(), numClasses).toFloat().transpose() as tf.Tensor2D
    const counts = members.sum(1)
    const m = prior.shape[0]
    // Unbiased within-sample terms: the kernel's diagonal is exactly 1.
    const within = members
      .matMul(kernel(samples, samples))
      .mul(members)
      .sum(1)
      .sub(counts)
      .div(tf.maximum(counts.mul(counts.sub(1)), 1))
    const across = members
      .matMul(kernel(samples, prior))
      .sum(1)
      .div(tf.maximum(counts.mul(m), 1))
    const priorWithin = kernel(prior, prior)
      .sum()
      .sub(m)
      .div(m * (m - 1))
    const perClass = within.sub(across.mul(2)).add(priorWithin)
    const weights = counts.mul(tf.greaterEqual(counts, 2).toFloat())
    return perClass.mul(weights).sum().div(tf.maximum(weights.sum(), 1)) as tf.Scalar
  })
}

/**
 * Each column of a batch moved to mean 0 and variance 1 (with the gradient through the batch's
 * statistics, as batch normalisation has it). The class adversary reads the means through it:
 * 5-NN accuracy does not change when a space is shrunk, so neither may the adversary's view, else
 * the encoder hides the class most cheaply by shrinking z_u towards a constant (measured: at weight
 * 20 on raw means z_u collapsed to 0.21 nats while its 5-NN class accuracy stayed 0.69).
 */
export function standardizeColumns(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, 0)
    return x.sub(mean).div(variance.add(1e-8).sqrt()) as tf.Tensor2D
  })
}

/**
 * The adversarial class term on a free space, as one scalar whose gradient trains both sides in
 * the same optimiser step (no second optimiser, so the data-parallel trainer needs nothing new):
 * - the classifier sees the means with their gradient stopped and learns to name the class
 *   (cross-entropy with the labels, weight 1);
 * - the encoder sees the classifier with its weights' gradient stopped and is charged `weight`
 *   times the cross-entropy between the classifier's guess and the uniform guess, least (log C)
 *   when the guess says nothing. Aiming at the uniform guess rather than reversing the classifier's
 *   gradient keeps the encoder from hiding the class by making the classifier confidently wrong.
 * `logits(x, frozen)` is the classifier; `means` [b, d]; `labels` [b].
 */
export function adversarialClassTerm(
  logits: (x: tf.Tensor2D, frozen: boolean) => tf.Tensor2D,
  means: tf.Tensor2D,
  labels: tf.Tensor1D,
  numClasses: number,
  weight: number
): tf.Scalar {
  return tf.tidy(() => {
    const targets = tf.oneHot(labels.toInt(), numClasses).toFloat()
    const classifier = tf
      .logSoftmax(logits(stopGradient(means), false))
      .mul(targets)
      .sum(1)
      .mean()
      .neg()
    const encoder = tf.logSoftmax(logits(means, true)).mean(1).mean().neg()
    return classifier.add(encoder.mul(weight)) as tf.Scalar
  })
}
