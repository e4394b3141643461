// The conditional disentangled VAE (models.md section 3).
//   p(z_l | c) = N(mu_c, s2_c) learned per class; p(z_u) = N(0, I);
//   q(z_l, z_u | x) = q(z_l | x) q(z_u | x): one trunk, two heads, blind to c;
//   p(x | z_l, z_u): blind to c.
// Loss = -E_q[log p(x | z_l, z_u)] + KL(q(z_l|x) || p(z_l|c)) + KL(q(z_u|x) || N(0, I)).
import * as tf from '@tensorflow/tfjs'
import { GaussianHead, ImageDecoder, ImageTrunk, layersConcat, layersImageMean, layersInput, Mlp, ParameterStore } from './blocks'
import { klStandardNormalPerDim, logPriorOverPosterior, reparameterize, sumTerms } from './distributions'
import { adversarialClassTerm, assembleLoss, classConditionalMmd, standardizeColumns } from './objective'
import { ClassPrior, ImageLikelihood, standardNoise } from './priors'
import type { DecodedImages, ExportedNetwork, LatentSpaceInfo, LossResult, ModelConfigOf, SampleOptions, VaeFamilyModel } from './types'
import { requireLabels } from './vae'

/** Hidden units of each of the z_u adversary's two hidden layers. */
const ADVERSARY_WIDTH = 128

export class Cdvae implements VaeFamilyModel {
  readonly parameters: ParameterStore
  readonly spaces: LatentSpaceInfo[]
  readonly conditionalSpace = 'z_l'
  readonly freeSpace = 'z_u'
  readonly prior: ClassPrior
  private readonly lDim: number
  private readonly uDim: number
  private readonly trunk: ImageTrunk
  private readonly lHead: GaussianHead
  private readonly uHead: GaussianHead
  private readonly decoder: ImageDecoder
  private readonly likelihood: ImageLikelihood
  /** Present only when the objective asks for it, so runs trained without it keep their weights' names. */
  private readonly adversary: Mlp | null

  constructor(readonly config: ModelConfigOf<'cdvae'>) {
    if (config.numClasses < 2) {
      throw new Error('the CDVAE learns p(z_l | c) and needs labelled data with at least two classes')
    }
    this.lDim = config.latentDims.z_l
    this.uDim = config.latentDims.z_u
    const store = (this.parameters = new ParameterStore(config.seed))
    this.trunk = new ImageTrunk(store, 'encoder', config.image)
    this.lHead = new GaussianHead(store, 'encoder/z_l', this.trunk.featureDim, this.lDim)
    this.uHead = new GaussianHead(store, 'encoder/z_u', this.trunk.featureDim, this.uDim)
    this.decoder = new ImageDecoder(store, 'decoder', this.lDim + this.uDim, config.image)
    this.likelihood = new ImageLikelihood(store, 'x', config.likelihood, config.gamma)
    this.prior = new ClassPrior(store, 'prior/z_l', config.numClasses, this.lDim, config.classPriorRadius, config.classPriorLearned)
    // Made last, so that every other weight starts as it did before the adversary existed.
    this.adversary =
      config.objective.freeSpaceAdversary > 0 ? new Mlp(store, 'adversary/z_u', [this.uDim, ADVERSARY_WIDTH, ADVERSARY_WIDTH, config.numClasses]) : null
    this.spaces = [
      { name: 'z_l', dim: this.lDim, description: 'class-informed latent, prior p(z_l|c)', isImage: false },
      { name: 'z_u', dim: this.uDim, description: 'free latent, prior N(0, I)', isImage: false }
    ]
  }

  private heads(x: tf.Tensor4D) {
    const h = this.trunk.apply(x)
    return { l: this.lHead.apply(h), u: this.uHead.apply(h) }
  }

  posteriors(x: tf.Tensor4D) {
    const { l, u } = this.heads(x)
    return { z_l: l, z_u: u }
  }

  private decodeBoth(zl: tf.Tensor2D, zu: tf.Tensor2D): DecodedImages {
    return { x: this.likelihood.mean(this.decoder.apply(tf.concat([zl, zu], 1))) }
  }

  loss(x: tf.Tensor4D, labels: tf.Tensor1D | null, seed: number, step?: number): LossResult {
    const { l, u } = this.heads(x)
    const zl = reparameterize(l.mu, l.logvar, seed * 2)
    const zu = reparameterize(u.mu, u.logvar, seed * 2 + 1)
    const known = requireLabels(labels)
    // The independence term compares z_u's draws with prior draws of a stream of their own (the
    // negative seeds, which no reparameterisation uses).
    const { freeSpaceIndependence: independence, freeSpaceAdversary } = this.config.objective
    const regularizers: tf.Scalar[] = []
    if (independence > 0) {
      regularizers.push(classConditionalMmd(zu, known, this.config.numClasses, standardNoise(x.shape[0], this.uDim, -(seed + 1))).mul(independence))
    }
    const adversary = this.adversary
    if (adversary && freeSpaceAdversary > 0) {
      // On the means, standardised: they are what the maps show and what the 5-NN class accuracy
      // measures, and that accuracy ignores the space's scale.
      regularizers.push(
        adversarialClassTerm((v, frozen) => adversary.apply(v, frozen), standardizeColumns(u.mu), known, this.config.numClasses, freeSpaceAdversary)
      )
    }
    return assembleLoss(
      this.likelihood.negLogLik(this.decoder.apply(tf.concat([zl, zu], 1)), x),
      { z_l: this.prior.klPerDim(l.mu, l.logvar, known), z_u: klStandardNormalPerDim(u.mu, u.logvar) },
      this.config.objective,
      step,
      regularizers.length ? tf.addN(regularizers) : undefined
    )
  }

  logImportanceWeight(x: tf.Tensor4D, labels: tf.Tensor1D | null, seed: number): tf.Tensor1D {
    const { l, u } = this.heads(x)
    const zl = reparameterize(l.mu, l.logvar, seed * 2)
    const zu = reparameterize(u.mu, u.logvar, seed * 2 + 1)
    return logPriorOverPosterior(zl, l, this.prior.params(requireLabels(labels)))
      .add(logPriorOverPosterior(zu, u, null))
      .sub(sumTerms(this.likelihood.negLogLik(this.decoder.apply(tf.concat([zl, zu], 1)), x)))
  }

  encode(x: tf.Tensor4D): { z_l: tf.Tensor2D; z_u: tf.Tensor2D } {
    const { l, u } = this.heads(x)
    return { z_l: l.mu, z_u: u.mu }
  }

  /** From z_l the style z_u comes from context (else the prior mean 0); from z_u, z_l comes from context (else the class-mean centre). */
  decode(space: string, latents: tf.Tensor2D, context: Record<string, tf.Tensor2D> = {}): DecodedImages {
    const n = latents.shape[0]
    if (space === 'z_l') return this.decodeBoth(latents, context.z_u ?? tf.zeros([n, this.uDim]))
    if (space === 'z_u') return this.decodeBoth(context.z_l ?? this.prior.centre(n), latents)
    throw new Error(`the CDVAE has no latent space "${space}"`)
  }

  reconstruct(x: tf.Tensor4D): DecodedImages {
    const { z_l, z_u } = this.encode(x)
    return this.decodeBoth(z_l, z_u)
  }

  /** z_l ~ p(z_l | c) (or the class-mean centre without a class), z_u ~ N(0, I); either may be fixed. */
  sample(n: number, options: SampleOptions = {}): DecodedImages {
    const t = options.temperature ?? 1
    const seed = options.seed
    const epsL = standardNoise(n, this.lDim, seed, options.noise?.z_l)
    const epsU = standardNoise(n, this.uDim, seed === undefined ? undefined : seed + 1, options.noise?.z_u)
    const zl = options.fixed?.z_l ?? (options.classIndex !== undefined ? this.prior.sample(options.classIndex, epsL, t) : this.prior.centre(n))
    const zu = options.fixed?.z_u ?? (epsU.mul(t) as tf.Tensor2D)
    return this.decodeBoth(zl, zu)
  }

  /** The free classifier's scores: log p(z_l = mu_l(x) | c) for every c. */
  classLogLikelihoods(x: tf.Tensor4D): tf.Tensor2D {
    return this.prior.logLikelihoods(this.encode(x).z_l)
  }

  classPrior(): ClassPrior {
    return this.prior
  }

  networks(): ExportedNetwork[] {
    const x = layersInput('x', [this.config.image.height, this.config.image.width, this.config.image.channels])
    const h = this.trunk.toLayers(x, 'encoder')
    const l = this.lHead.toLayers(h, 'z_l')
    const u = this.uHead.toLayers(h, 'z_u')
    const zl = layersInput('z_l', [this.lDim])
    const zu = layersInput('z_u', [this.uDim])
    const decoded = layersImageMean(this.decoder.toLayers(layersConcat([zl, zu], 'z_l_z_u'), 'decoder'), 'x_mean')
    return [
      {
        name: 'encoder',
        description: 'x [h, w, c] in [0, 1] -> z_l_mean, z_l_logvar, z_u_mean, z_u_logvar',
        model: tf.model({ name: 'encoder', inputs: x, outputs: [l.mu, l.logvar, u.mu, u.logvar] })
      },
      { name: 'decoder', description: 'z_l, z_u -> x_mean [h, w, c] in [0, 1]', model: tf.model({ name: 'decoder', inputs: [zl, zu], outputs: decoded }) }
    ]
  }

  dispose(): void {
    this.parameters.dispose()
  }
}
