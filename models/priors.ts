// Likelihoods of images and the learned class-conditional prior, shared by every family.
import * as tf from '@tensorflow/tfjs'
import { bernoulliNegLogLik, gaussianNegLogLikTerms, klDiagonalGaussians, logNormalDiagonal, optimalLogGamma } from './distributions'
import type { ParameterStore } from './blocks'
import type { GammaMode, Likelihood } from './types'

/**
 * p(v | decoder output) for an image-shaped variable v: Bernoulli on logits, or a Gaussian with
 * one scale gamma (learned, or the batch's closed-form optimum). The decoder's pre-activations go
 * through a sigmoid to give the mean in both cases, so that decodings are always images in [0, 1].
 */
export class ImageLikelihood {
  private readonly logGamma: tf.Variable | null

  constructor(
    store: ParameterStore,
    readonly variable: string,
    readonly kind: Likelihood,
    readonly gammaMode: GammaMode
  ) {
    // Start at gamma = e^-1 (about a third of the [0,1] pixel range) rather than 1, which would make
    // reconstruction nearly free and invite posterior collapse in the first steps.
    this.logGamma = kind === 'gaussian' && gammaMode === 'learned' ? store.constant(`log_gamma_${variable}`, [], -1) : null
  }

  mean(preActivation: tf.Tensor4D): tf.Tensor4D {
    return tf.sigmoid(preActivation)
  }

  /** Per-item terms: reconstruction_<v> (and log_gamma_<v> for the Gaussian). */
  negLogLik(preActivation: tf.Tensor4D, v: tf.Tensor4D): Record<string, tf.Tensor1D> {
    if (this.kind === 'bernoulli') return { [`reconstruction_${this.variable}`]: bernoulliNegLogLik(preActivation, v) }
    const mean = this.mean(preActivation)
    const logGamma = (this.logGamma as tf.Scalar | null) ?? optimalLogGamma(mean, v)
    const { squaredError, logGammaTerm } = gaussianNegLogLikTerms(mean, v, logGamma)
    return { [`reconstruction_${this.variable}`]: squaredError, [`log_gamma_${this.variable}`]: logGammaTerm }
  }

  /** Current gamma (learned models), for display. */
  gamma(): number | null {
    return this.logGamma ? Math.exp(this.logGamma.dataSync()[0]) : null
  }
}

/**
 * p(latent | c) = N(mu_c, diag(exp(logvar_c))), one learned mean and log-variance per class.
 * Class lookups use oneHot x matMul rather than tf.gather, whose gradient (UnsortedSegmentSum) the
 * wasm backend lacks.
 */
export class ClassPrior {
  readonly means: tf.Variable
  readonly logvars: tf.Variable

  constructor(store: ParameterStore, name: string, readonly numClasses: number, readonly dim: number) {
    // Means start spread out (uniform in +-1) so that classes do not begin on top of each other.
    this.means = store.uniform(`${name}/class_means`, [numClasses, dim], 1)
    this.logvars = store.constant(`${name}/class_logvars`, [numClasses, dim], 0)
  }

  params(labels: tf.Tensor1D): { mu: tf.Tensor2D; logvar: tf.Tensor2D } {
    const oneHot = tf.oneHot(labels.toInt(), this.numClasses).toFloat() as tf.Tensor2D
    return { mu: oneHot.matMul(this.means as tf.Tensor2D) as tf.Tensor2D, logvar: oneHot.matMul(this.logvars as tf.Tensor2D) as tf.Tensor2D }
  }

  kl(mu: tf.Tensor2D, logvar: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor1D {
    const prior = this.params(labels)
    return klDiagonalGaussians(mu, logvar, prior.mu, prior.logvar)
  }

  /** log p(v | c) for every class: [n, C]. */
  logLikelihoods(v: tf.Tensor2D): tf.Tensor2D {
    const columns: tf.Tensor1D[] = []
    for (let c = 0; c < this.numClasses; c++) {
      const mu = (this.means as tf.Tensor2D).slice([c, 0], [1, this.dim]).tile([v.shape[0], 1]) as tf.Tensor2D
      const logvar = (this.logvars as tf.Tensor2D).slice([c, 0], [1, this.dim]).tile([v.shape[0], 1]) as tf.Tensor2D
      columns.push(logNormalDiagonal(v, mu, logvar))
    }
    return tf.stack(columns, 1) as tf.Tensor2D
  }

  /** mu_c + temperature * s_c * eps for class c. */
  sample(classIndex: number, eps: tf.Tensor2D, temperature: number): tf.Tensor2D {
    const mu = (this.means as tf.Tensor2D).slice([classIndex, 0], [1, this.dim])
    const std = (this.logvars as tf.Tensor2D).slice([classIndex, 0], [1, this.dim]).mul(0.5).exp()
    return mu.add(std.mul(eps).mul(temperature))
  }

  /** The average of the class means: a neutral value when no class is given. */
  centre(n: number): tf.Tensor2D {
    return (this.means as tf.Tensor2D).mean(0, true).tile([n, 1]) as tf.Tensor2D
  }
}

/** Mean over the batch of every per-item term, and their sum. */
export function batchMeans(perItem: Record<string, tf.Tensor1D>): { total: tf.Scalar; terms: Record<string, tf.Scalar> } {
  const terms: Record<string, tf.Scalar> = {}
  let total: tf.Scalar | null = null
  for (const [name, values] of Object.entries(perItem)) {
    const mean = values.mean() as tf.Scalar
    terms[name] = mean
    total = total ? total.add(mean) : mean
  }
  if (!total) throw new Error('a loss needs at least one term')
  return { total, terms }
}

/** A standard-normal draw of [n, dim], or the caller's shared noise. */
export function standardNoise(n: number, dim: number, seed: number | undefined, given?: tf.Tensor2D): tf.Tensor2D {
  if (given) {
    if (given.shape[0] !== n || given.shape[1] !== dim) throw new Error(`noise must be [${n}, ${dim}], got [${given.shape}]`)
    return given
  }
  return tf.randomNormal([n, dim], 0, 1, 'float32', seed)
}
