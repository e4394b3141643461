// The hierarchical "super-resolution" VAE (models.md section 2).
//   y = d(x), average pooling by `downscale` (deterministic, q(y|x) = delta);
//   generative: p(u) [= N(0,I) or p(u|c)], p(y|u) Gaussian(y_hat(u), gamma_2),
//               p(z|y,u) = N(mu_p(y,u), s2_p(y,u)) a learned conditional prior,
//               p(x|y,z) Gaussian(x_hat(y,z), gamma_1) or Bernoulli;
//   inference:  q(u|y) = N(mu_u(y), s2_u(y)), q(z|x) = N(mu_z(x), s2_z(x)).
// Loss = -log p(x|y,z) - log p(y|u) + KL(q(u|y) || p(u)) + KL(q(z|x) || p(z|y,u)),
// with u ~ q(u|y), z ~ q(z|x), and the x-decoder fed the true y during training.
import * as tf from '@tensorflow/tfjs'
import { GaussianHead, ImageDecoder, ImageTrunk, layersConcat, layersImageMean, layersInput, Mlp, ParameterStore, pixelCount, type ImageShape } from './blocks'
import { klDiagonalGaussiansPerDim, klStandardNormalPerDim, logPriorOverPosterior, reparameterize, sumTerms } from './distributions'
import { assembleLoss } from './objective'
import { ClassPrior, ImageLikelihood, standardNoise } from './priors'
import type { DecodedImages, ExportedNetwork, LatentSpaceInfo, LossResult, ModelConfigOf, SampleOptions, VaeFamilyModel } from './types'
import { requireLabels } from './vae'

const PRIOR_HIDDEN = 256

export class Srvae implements VaeFamilyModel {
  readonly parameters: ParameterStore
  readonly spaces: LatentSpaceInfo[]
  readonly conditionalSpace: string | null
  readonly freeSpace = null
  readonly yShape: ImageShape
  private readonly uDim: number
  private readonly zDim: number
  private readonly yDim: number
  private readonly uTrunk: ImageTrunk
  private readonly uHead: GaussianHead
  private readonly yDecoder: ImageDecoder
  private readonly yLikelihood: ImageLikelihood
  private readonly zTrunk: ImageTrunk
  private readonly zHead: GaussianHead
  private readonly zPrior: Mlp
  private readonly xDecoder: ImageDecoder
  private readonly xLikelihood: ImageLikelihood
  private readonly uPrior: ClassPrior | null

  constructor(readonly config: ModelConfigOf<'srvae'>) {
    const { image, downscale: f } = config
    if (image.height % f !== 0 || image.width % f !== 0) {
      throw new Error(`SRVAE: image ${image.width}x${image.height} does not divide by the downscale factor ${f}`)
    }
    this.yShape = { height: image.height / f, width: image.width / f, channels: image.channels }
    this.uDim = config.latentDims.u
    this.zDim = config.latentDims.z
    this.yDim = pixelCount(this.yShape)
    const store = (this.parameters = new ParameterStore(config.seed))
    this.uTrunk = new ImageTrunk(store, 'encoder_u', this.yShape)
    this.uHead = new GaussianHead(store, 'encoder_u/u', this.uTrunk.featureDim, this.uDim)
    this.yDecoder = new ImageDecoder(store, 'decoder_y', this.uDim, this.yShape)
    // y is an average of pixels, not binary: its likelihood is always the calibrated Gaussian.
    this.yLikelihood = new ImageLikelihood(store, 'y', 'gaussian', config.gamma)
    this.zTrunk = new ImageTrunk(store, 'encoder_z', image)
    this.zHead = new GaussianHead(store, 'encoder_z/z', this.zTrunk.featureDim, this.zDim)
    this.zPrior = new Mlp(store, 'prior_z', [this.yDim + this.uDim, PRIOR_HIDDEN, 2 * this.zDim])
    this.xDecoder = new ImageDecoder(store, 'decoder_x', this.yDim + this.zDim, image)
    this.xLikelihood = new ImageLikelihood(store, 'x', config.likelihood, config.gamma)
    const conditional = config.conditionalPrior && config.numClasses > 1
    this.uPrior = conditional ? new ClassPrior(store, 'prior/u', config.numClasses, this.uDim, config.classPriorRadius, config.classPriorLearned) : null
    this.conditionalSpace = conditional ? 'u' : null
    this.spaces = [
      { name: 'u', dim: this.uDim, description: 'latent of the low-resolution y', isImage: false },
      { name: 'y', dim: this.yDim, description: `x downscaled ${f}x (${this.yShape.width}x${this.yShape.height})`, isImage: true },
      { name: 'z', dim: this.zDim, description: 'latent of x given y', isImage: false }
    ]
  }

  /** y = d(x): average pooling, flattened to [n, k_y]. */
  downscale(x: tf.Tensor4D): tf.Tensor2D {
    const f = this.config.downscale
    return tf.avgPool(x, f, f, 'valid').reshape([x.shape[0], this.yDim])
  }

  private yImage(y: tf.Tensor2D): tf.Tensor4D {
    return y.reshape([y.shape[0], this.yShape.height, this.yShape.width, this.yShape.channels])
  }

  private qU(y: tf.Tensor2D) {
    return this.uHead.apply(this.uTrunk.apply(this.yImage(y)))
  }

  private qZ(x: tf.Tensor4D) {
    return this.zHead.apply(this.zTrunk.apply(x))
  }

  posteriors(x: tf.Tensor4D) {
    return { u: this.qU(this.downscale(x)), z: this.qZ(x) }
  }

  /** p(z | y, u): mean and log-variance from the prior network. */
  priorZ(y: tf.Tensor2D, u: tf.Tensor2D): { mu: tf.Tensor2D; logvar: tf.Tensor2D } {
    const out = this.zPrior.apply(tf.concat([y, u], 1))
    return { mu: out.slice([0, 0], [-1, this.zDim]), logvar: out.slice([0, this.zDim], [-1, this.zDim]) }
  }

  private xPre(y: tf.Tensor2D, z: tf.Tensor2D): tf.Tensor4D {
    return this.xDecoder.apply(tf.concat([y, z], 1))
  }

  private yMean(u: tf.Tensor2D): tf.Tensor2D {
    return this.yLikelihood.mean(this.yDecoder.apply(u)).reshape([u.shape[0], this.yDim])
  }

  loss(x: tf.Tensor4D, labels: tf.Tensor1D | null, seed: number, step?: number): LossResult {
    const y = this.downscale(x)
    const qu = this.qU(y)
    const u = reparameterize(qu.mu, qu.logvar, seed * 2)
    const qz = this.qZ(x)
    const z = reparameterize(qz.mu, qz.logvar, seed * 2 + 1)
    const pz = this.priorZ(y, u)
    return assembleLoss(
      { ...this.xLikelihood.negLogLik(this.xPre(y, z), x), ...this.yLikelihood.negLogLik(this.yDecoder.apply(u), this.yImage(y)) },
      {
        u: this.uPrior ? this.uPrior.klPerDim(qu.mu, qu.logvar, requireLabels(labels)) : klStandardNormalPerDim(qu.mu, qu.logvar),
        z: klDiagonalGaussiansPerDim(qz.mu, qz.logvar, pz.mu, pz.logvar)
      },
      this.config.objective,
      step
    )
  }

  logImportanceWeight(x: tf.Tensor4D, labels: tf.Tensor1D | null, seed: number): tf.Tensor1D {
    const y = this.downscale(x)
    const qu = this.qU(y)
    const u = reparameterize(qu.mu, qu.logvar, seed * 2)
    const qz = this.qZ(x)
    const z = reparameterize(qz.mu, qz.logvar, seed * 2 + 1)
    const negLogLik = sumTerms({ ...this.xLikelihood.negLogLik(this.xPre(y, z), x), ...this.yLikelihood.negLogLik(this.yDecoder.apply(u), this.yImage(y)) })
    return logPriorOverPosterior(u, qu, this.uPrior ? this.uPrior.params(requireLabels(labels)) : null)
      .add(logPriorOverPosterior(z, qz, this.priorZ(y, u)))
      .sub(negLogLik)
  }

  encode(x: tf.Tensor4D): { u: tf.Tensor2D; y: tf.Tensor2D; z: tf.Tensor2D } {
    const y = this.downscale(x)
    return { u: this.qU(y).mu, y, z: this.qZ(x).mu }
  }

  /** Fills the other spaces in the generative direction (models.md, "Decoding from one space"). */
  decode(space: string, latents: tf.Tensor2D, context: Record<string, tf.Tensor2D> = {}): DecodedImages {
    let y: tf.Tensor2D
    let z: tf.Tensor2D
    if (space === 'u') {
      y = this.yMean(latents)
      z = this.priorZ(y, latents).mu
    } else if (space === 'y') {
      y = latents
      z = this.priorZ(y, this.qU(y).mu).mu
    } else if (space === 'z') {
      if (!context.y) throw new Error('SRVAE: decoding from z needs the y of the same item')
      y = context.y
      z = latents
    } else {
      throw new Error(`the SRVAE has no latent space "${space}"`)
    }
    return { x: this.xLikelihood.mean(this.xPre(y, z)), y: this.yImage(y) }
  }

  reconstruct(x: tf.Tensor4D): DecodedImages {
    const { u, y, z } = this.encode(x)
    return { x: this.xLikelihood.mean(this.xPre(y, z)), y: this.yImage(y), y_decoded: this.yImage(this.yMean(u)) }
  }

  /** Ancestral sampling: u ~ p(u); y = y_hat(u); z ~ p(z|y,u); x = x_hat(y, z). */
  sample(n: number, options: SampleOptions = {}): DecodedImages {
    const t = options.temperature ?? 1
    const seed = options.seed
    const epsU = standardNoise(n, this.uDim, seed, options.noise?.u)
    const u = options.fixed?.u ?? (this.uPrior && options.classIndex !== undefined ? this.uPrior.sample(options.classIndex, epsU, t) : epsU.mul(t))
    const y = options.fixed?.y ?? this.yMean(u as tf.Tensor2D)
    const pz = this.priorZ(y, u as tf.Tensor2D)
    const epsZ = standardNoise(n, this.zDim, seed === undefined ? undefined : seed + 1, options.noise?.z)
    const z = options.fixed?.z ?? reparameterize(pz.mu, pz.logvar.add(2 * Math.log(Math.max(t, 1e-3))), undefined, epsZ)
    return { x: this.xLikelihood.mean(this.xPre(y, z)), y: this.yImage(y) }
  }

  classLogLikelihoods(x: tf.Tensor4D): tf.Tensor2D | null {
    return this.uPrior ? this.uPrior.logLikelihoods(this.encode(x).u) : null
  }

  classPrior(): ClassPrior | null {
    return this.uPrior
  }

  /**
   * y itself is x average-pooled by the downscale factor and flattened (no network); p(z | y, u)'s
   * network gives [mean | logvar] side by side, z's dimensions each.
   */
  networks(): ExportedNetwork[] {
    const { height, width, channels } = this.config.image
    const y = layersInput('y', [this.yDim])
    const yImage = tf.layers
      .reshape({ targetShape: [this.yShape.height, this.yShape.width, this.yShape.channels], name: 'y_image' })
      .apply(y) as tf.SymbolicTensor
    const qu = this.uHead.toLayers(this.uTrunk.toLayers(yImage, 'encoder_u'), 'u')
    const x = layersInput('x', [height, width, channels])
    const qz = this.zHead.toLayers(this.zTrunk.toLayers(x, 'encoder_z'), 'z')
    const u = layersInput('u', [this.uDim])
    const yDecoded = layersImageMean(this.yDecoder.toLayers(u, 'decoder_y'), 'y_mean')
    const yForPrior = layersInput('y', [this.yDim])
    const uForPrior = layersInput('u', [this.uDim])
    const prior = this.zPrior.toLayers(layersConcat([yForPrior, uForPrior], 'y_u'), 'prior_z')
    const yForX = layersInput('y', [this.yDim])
    const z = layersInput('z', [this.zDim])
    const xDecoded = layersImageMean(this.xDecoder.toLayers(layersConcat([yForX, z], 'y_z'), 'decoder_x'), 'x_mean')
    return [
      {
        name: 'encoder_u',
        description: 'y (x downscaled, flattened) -> u_mean, u_logvar',
        model: tf.model({ name: 'encoder_u', inputs: y, outputs: [qu.mu, qu.logvar] })
      },
      {
        name: 'encoder_z',
        description: 'x [h, w, c] in [0, 1] -> z_mean, z_logvar',
        model: tf.model({ name: 'encoder_z', inputs: x, outputs: [qz.mu, qz.logvar] })
      },
      { name: 'decoder_y', description: 'u -> y_mean [h/f, w/f, c] in [0, 1]', model: tf.model({ name: 'decoder_y', inputs: u, outputs: yDecoded }) },
      {
        name: 'prior_z',
        description: 'y, u -> [z mean | z logvar] of p(z | y, u)',
        model: tf.model({ name: 'prior_z', inputs: [yForPrior, uForPrior], outputs: prior })
      },
      { name: 'decoder_x', description: 'y, z -> x_mean [h, w, c] in [0, 1]', model: tf.model({ name: 'decoder_x', inputs: [yForX, z], outputs: xDecoded }) }
    ]
  }

  dispose(): void {
    this.parameters.dispose()
  }
}
