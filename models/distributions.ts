// The probability pieces every model family shares (../shared/docs/models.md, "Shared pieces").
// All functions take batched tensors and return one value per item ([batch]), in nats, so that the
// models can report each named term separately and average over the batch themselves.
import * as tf from '@tensorflow/tfjs'
import { tfSeed } from './random'
import type { GaussianParams } from './types'

export const LOG_2PI = Math.log(2 * Math.PI)

/** Sum over every axis but the first: [b, ...] -> [b]. */
export function sumPerItem(t: tf.Tensor): tf.Tensor1D {
  const axes = t.shape.map((_, i) => i).slice(1)
  return (axes.length ? t.sum(axes) : t) as tf.Tensor1D
}

/** z = mu + exp(logvar / 2) * eps. `eps` defaults to a standard-normal draw with `seed`. */
export function reparameterize(mu: tf.Tensor2D, logvar: tf.Tensor2D, seed?: number, eps?: tf.Tensor2D): tf.Tensor2D {
  const noise = eps ?? tf.randomNormal(mu.shape, 0, 1, 'float32', seed === undefined ? undefined : tfSeed(seed))
  return mu.add(logvar.mul(0.5).exp().mul(noise))
}

/** KL(N(mu, exp(logvar)) || N(0, I)) per item and dimension: 1/2 (mu^2 + s2 - 1 - log s2), [b, d]. */
export function klStandardNormalPerDim(mu: tf.Tensor2D, logvar: tf.Tensor2D): tf.Tensor2D {
  return mu.square().add(logvar.exp()).sub(1).sub(logvar).mul(0.5)
}

/**
 * KL(N(m1, s1) || N(m2, s2)) between diagonal Gaussians, variances given as log-variances:
 * 1/2 (log(s2/s1) + (s1 + (m1 - m2)^2) / s2 - 1) per item and dimension, [b, d]. Seed 004's result.
 */
export function klDiagonalGaussiansPerDim(mu1: tf.Tensor2D, logvar1: tf.Tensor2D, mu2: tf.Tensor2D, logvar2: tf.Tensor2D): tf.Tensor2D {
  const inverseVar2 = logvar2.neg().exp()
  const ratio = logvar1.exp().add(mu1.sub(mu2).square()).mul(inverseVar2)
  return logvar2.sub(logvar1).add(ratio).sub(1).mul(0.5)
}

/** log N(x; mu, exp(logvar)) summed over dimensions, per item (includes the 2*pi constant). */
export function logNormalDiagonal(x: tf.Tensor2D, mu: tf.Tensor2D, logvar: tf.Tensor2D): tf.Tensor1D {
  const mahalanobis = x.sub(mu).square().mul(logvar.neg().exp())
  return sumPerItem(mahalanobis.add(logvar).add(LOG_2PI)).mul(-0.5)
}

/**
 * log p(z) - log q(z) per item for a draw z of q = N(q.mu, exp(q.logvar)), with p = N(p.mu, exp(p.logvar))
 * or N(0, I) when p is null: one draw's share of an importance weight (Burda et al. 2016).
 */
export function logPriorOverPosterior(z: tf.Tensor2D, q: GaussianParams, p: GaussianParams | null): tf.Tensor1D {
  const prior = p ?? { mu: tf.zerosLike(z), logvar: tf.zerosLike(z) }
  return logNormalDiagonal(z, prior.mu, prior.logvar).sub(logNormalDiagonal(z, q.mu, q.logvar))
}

/** The sum of per-item terms (a negLogLik record): -log p(x | z) per item. */
export function sumTerms(terms: Record<string, tf.Tensor1D>): tf.Tensor1D {
  return tf.addN(Object.values(terms)) as tf.Tensor1D
}

/**
 * -log Bernoulli(x | sigmoid(logits)) summed over pixels, in the stable form
 * max(l, 0) - l*x + log(1 + exp(-|l|)), the same as PyTorch's binary_cross_entropy_with_logits.
 */
export function bernoulliNegLogLik(logits: tf.Tensor, x: tf.Tensor): tf.Tensor1D {
  const perPixel = tf
    .relu(logits)
    .sub(logits.mul(x))
    .add(tf.log1p(tf.exp(logits.abs().neg())))
  return sumPerItem(perPixel)
}

/**
 * -log N(v | v_hat, gamma^2 I) for a "calibrated decoder" with one scalar scale, split into the
 * parts models.md asks to report separately:
 *   logGammaTerm   = k log gamma
 *   squaredError   = ||v - v_hat||^2 / (2 gamma^2) + (k/2) log 2pi
 * with k the number of values per item.
 */
export function gaussianNegLogLikTerms(mean: tf.Tensor, v: tf.Tensor, logGamma: tf.Scalar): { squaredError: tf.Tensor1D; logGammaTerm: tf.Tensor1D } {
  const k = v.size / v.shape[0]
  const sse = sumPerItem(v.sub(mean).square())
  const squaredError = sse
    .mul(logGamma.mul(-2).exp())
    .mul(0.5)
    .add((k / 2) * LOG_2PI) as tf.Tensor1D
  const logGammaTerm = tf.onesLike(sse).mul(logGamma.mul(k)) as tf.Tensor1D
  return { squaredError, logGammaTerm }
}

/**
 * x's value with no gradient through it: tfjs has no tf.stopGradient, and reading the value back to
 * make a fresh tensor would need a synchronous read, which the webgpu backend cannot do in Node.
 */
export const stopGradient = tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const x = inputs[0] as tf.Tensor
  return { value: x.clone(), gradFunc: (dy: tf.Tensor) => tf.zerosLike(dy) }
}) as <T extends tf.Tensor>(x: T) => T

/**
 * The closed-form optimal scale for a batch: gamma^2 = mean squared error (returned as log gamma).
 * It is a constant for the gradient.
 */
export function optimalLogGamma(mean: tf.Tensor, v: tf.Tensor): tf.Scalar {
  return tf.tidy(() => stopGradient(v.sub(mean).square().mean().add(1e-6).log().mul(0.5) as tf.Scalar))
}
