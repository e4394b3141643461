// Likelihoods of images and the learned class-conditional prior, shared by every family.
import * as tf from '@tensorflow/tfjs'
import { bernoulliNegLogLik, gaussianNegLogLikTerms, klDiagonalGaussiansPerDim, logNormalDiagonal, optimalLogGamma } from './distributions'
import { seededRandom, tfSeed } from './random'
import type { ParameterStore } from './blocks'
import type { ClassPriorLearning, GammaMode, Likelihood } from './types'

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
}

/**
 * p(latent | c) = N(mu_c, diag(exp(logvar_c))), one learned mean and log-variance per class.
 * Class lookups use oneHot x matMul rather than tf.gather, whose gradient (UnsortedSegmentSum) the
 * wasm backend lacks.
 */
export class ClassPrior {
  readonly means: tf.Variable
  readonly logvars: tf.Variable

  /**
   * `radius`: the class means start on a sphere of this radius, as far apart as they can be, with
   * unit variances; `learned` says which of the two training moves.
   */
  constructor(
    store: ParameterStore,
    name: string,
    readonly numClasses: number,
    readonly dim: number,
    radius: number,
    learned: ClassPriorLearning = 'means-and-variances'
  ) {
    // The means are learned, but nothing in the ELBO pulls overlapping classes apart: classes that
    // start on top of each other (within a prior standard deviation) stay there, the free space
    // takes the class instead, and a class's draws look like any class (issue 15). So they start
    // apart, with unit variances, and training moves them from there.
    this.means = store.seeded(
      `${name}/class_means`,
      [numClasses, dim],
      (seed) => separatedPoints(numClasses, dim, radius, seededRandom(seed)),
      learned === 'means-and-variances'
    )
    this.logvars = store.constant(`${name}/class_logvars`, [numClasses, dim], 0, learned !== 'nothing')
  }

  params(labels: tf.Tensor1D): { mu: tf.Tensor2D; logvar: tf.Tensor2D } {
    const oneHot = tf.oneHot(labels.toInt(), this.numClasses).toFloat() as tf.Tensor2D
    return { mu: oneHot.matMul(this.means as tf.Tensor2D) as tf.Tensor2D, logvar: oneHot.matMul(this.logvars as tf.Tensor2D) as tf.Tensor2D }
  }

  /** KL(q || p(. | c)) per item and dimension, [n, dim]. */
  klPerDim(mu: tf.Tensor2D, logvar: tf.Tensor2D, labels: tf.Tensor1D): tf.Tensor2D {
    const prior = this.params(labels)
    return klDiagonalGaussiansPerDim(mu, logvar, prior.mu, prior.logvar)
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

/** A standard-normal draw of [n, dim], or the caller's shared noise. */
export function standardNoise(n: number, dim: number, seed: number | undefined, given?: tf.Tensor2D): tf.Tensor2D {
  if (given) {
    if (given.shape[0] !== n || given.shape[1] !== dim) throw new Error(`noise must be [${n}, ${dim}], got [${given.shape}]`)
    return given
  }
  return tf.randomNormal([n, dim], 0, 1, 'float32', seed === undefined ? undefined : tfSeed(seed))
}

/**
 * `count` points on the sphere of `radius` in `dim` dimensions, spread as evenly as a few hundred
 * steps of Coulomb repulsion from random directions get them (Thomson's problem): with count <= dim
 * + 1 they end near a regular simplex, every pair the same distance apart. Row-major [count, dim].
 */
export function separatedPoints(count: number, dim: number, radius: number, random: () => number): Float32Array {
  const out = new Float32Array(count * dim)
  if (dim === 1) {
    // A line: evenly from -radius to radius.
    for (let i = 0; i < count; i++) out[i] = count === 1 ? 0 : radius * (-1 + (2 * i) / (count - 1))
    return out
  }
  const gaussian = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
  const points = Array.from({ length: count }, () => normalise(Array.from({ length: dim }, gaussian)))
  for (let iteration = 0; iteration < 500; iteration++) {
    const forces = points.map(() => new Array<number>(dim).fill(0))
    for (let i = 0; i < count; i++) {
      for (let j = i + 1; j < count; j++) {
        let squared = 0
        for (let d = 0; d < dim; d++) squared += (points[i][d] - points[j][d]) ** 2
        const scale = 1 / Math.max(squared, 1e-6) ** 1.5
        for (let d = 0; d < dim; d++) {
          const push = (points[i][d] - points[j][d]) * scale
          forces[i][d] += push
          forces[j][d] -= push
        }
      }
    }
    const step = 0.5 / count
    for (let i = 0; i < count; i++) points[i] = normalise(points[i].map((v, d) => v + step * forces[i][d]))
  }
  points.forEach((p, i) => p.forEach((v, d) => (out[i * dim + d] = v * radius)))
  return out
}

function normalise(v: number[]): number[] {
  const norm = Math.hypot(...v) || 1
  return v.map((x) => x / norm)
}
