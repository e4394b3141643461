// The VAE (models.md section 1): p(z) = N(0, I) or, with labels and conditionalPrior, p(z | c);
// q(z | x) = N(mu(x), s2(x)); p(x | z) Bernoulli or calibrated Gaussian.
// Loss = -E_q[log p(x | z)] (one reparameterised sample) + KL(q(z|x) || p(z)) (closed form).
import * as tf from '@tensorflow/tfjs'
import { GaussianHead, ImageDecoder, ImageTrunk, layersImageMean, layersInput, ParameterStore } from './blocks'
import { klStandardNormalPerDim, logPriorOverPosterior, reparameterize, sumTerms } from './distributions'
import { assembleLoss } from './objective'
import { ClassPrior, ImageLikelihood, standardNoise } from './priors'
import type { DecodedImages, ExportedNetwork, LatentSpaceInfo, LossResult, ModelConfigOf, SampleOptions, VaeFamilyModel } from './types'

export class Vae implements VaeFamilyModel {
  readonly parameters: ParameterStore
  readonly spaces: LatentSpaceInfo[]
  readonly conditionalSpace: string | null
  readonly freeSpace = null
  private readonly trunk: ImageTrunk
  private readonly head: GaussianHead
  private readonly decoder: ImageDecoder
  private readonly likelihood: ImageLikelihood
  private readonly prior: ClassPrior | null
  private readonly zDim: number

  constructor(readonly config: ModelConfigOf<'vae'>) {
    this.zDim = config.latentDims.z
    this.parameters = new ParameterStore(config.seed)
    this.trunk = new ImageTrunk(this.parameters, 'encoder', config.image)
    this.head = new GaussianHead(this.parameters, 'encoder/z', this.trunk.featureDim, this.zDim)
    this.decoder = new ImageDecoder(this.parameters, 'decoder', this.zDim, config.image)
    this.likelihood = new ImageLikelihood(this.parameters, 'x', config.likelihood, config.gamma)
    const conditional = config.conditionalPrior && config.numClasses > 1
    this.prior = conditional
      ? new ClassPrior(this.parameters, 'prior/z', config.numClasses, this.zDim, config.classPriorRadius, config.classPriorLearned)
      : null
    this.conditionalSpace = conditional ? 'z' : null
    this.spaces = [{ name: 'z', dim: this.zDim, description: conditional ? 'latent z, prior p(z|c)' : 'latent z, prior N(0, I)', isImage: false }]
  }

  private posterior(x: tf.Tensor4D) {
    return this.head.apply(this.trunk.apply(x))
  }

  posteriors(x: tf.Tensor4D) {
    return { z: this.posterior(x) }
  }

  loss(x: tf.Tensor4D, labels: tf.Tensor1D | null, seed: number, step?: number): LossResult {
    const { mu, logvar } = this.posterior(x)
    const z = reparameterize(mu, logvar, seed)
    const kl = this.prior ? this.prior.klPerDim(mu, logvar, requireLabels(labels)) : klStandardNormalPerDim(mu, logvar)
    return assembleLoss(this.likelihood.negLogLik(this.decoder.apply(z), x), { z: kl }, this.config.objective, step)
  }

  logImportanceWeight(x: tf.Tensor4D, labels: tf.Tensor1D | null, seed: number): tf.Tensor1D {
    const q = this.posterior(x)
    const z = reparameterize(q.mu, q.logvar, seed)
    const prior = this.prior ? this.prior.params(requireLabels(labels)) : null
    return logPriorOverPosterior(z, q, prior).sub(sumTerms(this.likelihood.negLogLik(this.decoder.apply(z), x)))
  }

  encode(x: tf.Tensor4D): { z: tf.Tensor2D } {
    return { z: this.posterior(x).mu }
  }

  decode(space: string, latents: tf.Tensor2D): DecodedImages {
    if (space !== 'z') throw new Error(`the VAE has no latent space "${space}"`)
    return { x: this.likelihood.mean(this.decoder.apply(latents)) }
  }

  reconstruct(x: tf.Tensor4D): DecodedImages {
    return this.decode('z', this.encode(x).z)
  }

  sample(n: number, options: SampleOptions = {}): DecodedImages {
    const temperature = options.temperature ?? 1
    const fixed = options.fixed?.z
    if (fixed) return this.decode('z', fixed)
    const eps = standardNoise(n, this.zDim, options.seed, options.noise?.z)
    const z = this.prior && options.classIndex !== undefined ? this.prior.sample(options.classIndex, eps, temperature) : eps.mul(temperature)
    return this.decode('z', z as tf.Tensor2D)
  }

  classLogLikelihoods(x: tf.Tensor4D): tf.Tensor2D | null {
    return this.prior ? this.prior.logLikelihoods(this.encode(x).z) : null
  }

  classPrior(): ClassPrior | null {
    return this.prior
  }

  networks(): ExportedNetwork[] {
    const x = layersInput('x', [this.config.image.height, this.config.image.width, this.config.image.channels])
    const q = this.head.toLayers(this.trunk.toLayers(x, 'encoder'), 'z')
    const z = layersInput('z', [this.zDim])
    return [
      { name: 'encoder', description: 'x [h, w, c] in [0, 1] -> z_mean, z_logvar', model: tf.model({ name: 'encoder', inputs: x, outputs: [q.mu, q.logvar] }) },
      {
        name: 'decoder',
        description: 'z -> x_mean [h, w, c] in [0, 1]',
        model: tf.model({ name: 'decoder', inputs: z, outputs: layersImageMean(this.decoder.toLayers(z, 'decoder'), 'x_mean') })
      }
    ]
  }

  dispose(): void {
    this.parameters.dispose()
  }
}

export function requireLabels(labels: tf.Tensor1D | null): tf.Tensor1D {
  if (!labels) throw new Error('this model has a class-conditional prior and needs labelled data')
  return labels
}
