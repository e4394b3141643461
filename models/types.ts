// The one small interface every model family implements. The engine and the UI are written
// against it: adding a family adds a file in models/ and an entry in models/index.ts, nothing else.
import type * as tf from '@tensorflow/tfjs'
import type { ImageShape, ParameterStore } from './blocks'
import type { ObjectiveConfig } from './objective'
import type { ClassPrior } from './priors'

export type ModelFamily = 'vae' | 'srvae' | 'cdvae'
export type Likelihood = 'bernoulli' | 'gaussian'
/** Gaussian decoders: a trainable scale, or the closed-form optimum gamma^2 = MSE of the batch. */
export type GammaMode = 'learned' | 'optimal'
/** What of a class prior N(mu_c, s2_c) training learns: models.md's both, the variances only, or nothing. */
export type ClassPriorLearning = 'means-and-variances' | 'variances' | 'nothing'

/** Each family's latent spaces by name, with their sizes: the names are part of the type. */
export interface LatentDimsByFamily {
  vae: { z: number }
  srvae: { u: number; z: number }
  cdvae: { z_l: number; z_u: number }
}

/** What every family's config has. */
export interface ModelConfigCommon {
  image: ImageShape
  likelihood: Likelihood
  gamma: GammaMode
  /** Number of classes of the data (0 when unlabelled). */
  numClasses: number
  /** A learned p(top latent | c) on the VAE's z or the SRVAE's u (the CDVAE always has one on z_l). */
  conditionalPrior: boolean
  seed: number
  /** Class-conditional priors: the class means start this far from 0 (in prior standard deviations), spread evenly. */
  classPriorRadius: number
  /** Class-conditional priors: what training learns of them; the rest stays where it starts. */
  classPriorLearned: ClassPriorLearning
  /** What training minimises; the reported loss is the ELBO whatever this says. */
  objective: ObjectiveConfig
}

/** What only some families have. */
interface FamilyFields {
  vae: object
  /** SRVAE: y = average-pool(x) by `downscale`. */
  srvae: { downscale: number }
  cdvae: object
}

/** One family's config: its name, its spaces' sizes by name, and its own fields. */
export type ModelConfigOf<F extends ModelFamily> = F extends ModelFamily
  ? ModelConfigCommon & FamilyFields[F] & { family: F; latentDims: LatentDimsByFamily[F] }
  : never

/** A model's config, one member per family: `config.family` narrows it (pythae's per-model config classes, in a union). */
export type ModelConfig = ModelConfigOf<ModelFamily>

/** What a caller may set on a family's default config: the common fields, the family's latent sizes, the SRVAE's downscale. */
export type ModelConfigOverrides<F extends ModelFamily> = Partial<ModelConfigCommon> & { latentDims?: LatentDimsByFamily[F]; downscale?: number }

export interface LatentSpaceInfo {
  name: string
  dim: number
  description: string
  /** True for spaces whose coordinates are pixels (the SRVAE's y): the UI can show them as images. */
  isImage: boolean
}

export interface GaussianParams {
  mu: tf.Tensor2D
  logvar: tf.Tensor2D
}

/** Per-batch means of each named term; `total` is their sum, the negative ELBO in nats per item. */
export interface LossResult {
  total: tf.Scalar
  terms: Record<string, tf.Scalar>
  /** What training differentiates: `total` itself unless the config's objective says otherwise. */
  objective: tf.Scalar
  /** Batch-mean KL of each latent space per dimension, [dim]. */
  klPerDim: Record<string, tf.Tensor1D>
}

/** Named images in [0, 1], [n, h, w, c]; `x` is always present (the data-space image). */
export type DecodedImages = { x: tf.Tensor4D } & Record<string, tf.Tensor4D>

export interface SampleOptions {
  /** Condition on this class (models with a class prior only). */
  classIndex?: number
  /** Scales the standard deviation of every prior draw. */
  temperature?: number
  seed?: number
  /** Standard-normal noise per space ([n, dim]) to use instead of fresh draws: rows that share it share a style. */
  noise?: Record<string, tf.Tensor2D>
  /** Values to use as they are for some spaces (e.g. a real item's z_u: "this item as every class"). */
  fixed?: Record<string, tf.Tensor2D>
}

export interface VaeFamilyModel {
  readonly config: ModelConfig
  readonly spaces: LatentSpaceInfo[]
  readonly parameters: ParameterStore
  /** The space that carries p(. | c), or null when the model is unconditional. */
  readonly conditionalSpace: string | null
  /** The space whose standard-normal draw rows of a class grid share (CDVAE: z_u). */
  readonly freeSpace: string | null
  /**
   * Negative ELBO with its named terms for a batch in [0, 1]; labels are int32 class indices.
   * `step` (training only) is the global step, for the objective's KL warm-up.
   */
  loss(x: tf.Tensor4D, labels: tf.Tensor1D | null, seed: number, step?: number): LossResult
  /**
   * log p(x, z) - log q(z | x) per item for one draw z ~ q(z | x) (every stochastic space): one
   * importance weight. Its mean over draws is the ELBO; log mean exp over K draws is the K-sample
   * importance-weighted bound (models/iwae.ts).
   */
  logImportanceWeight(x: tf.Tensor4D, labels: tf.Tensor1D | null, seed: number): tf.Tensor1D
  /** q(. | x) per latent space (not the SRVAE's deterministic y), for KL per dimension and tests. */
  posteriors(x: tf.Tensor4D): Record<string, GaussianParams>
  /** Posterior means per space: the embeddings the maps show. */
  encode(x: tf.Tensor4D): Record<string, tf.Tensor2D>
  /** Decode from one space; the other spaces come from `context` or as models.md says. */
  decode(space: string, latents: tf.Tensor2D, context?: Record<string, tf.Tensor2D>): DecodedImages
  /** Reconstruction through the posterior means, with any intermediate images (SRVAE: y, its decoding). */
  reconstruct(x: tf.Tensor4D): DecodedImages
  sample(n: number, options?: SampleOptions): DecodedImages
  /** log p(top latent = posterior mean | c) for every class, [n, C]: the free classifier. */
  classLogLikelihoods(x: tf.Tensor4D): tf.Tensor2D | null
  /**
   * The model's networks as Keras-style LayersModels holding the current weights, for other
   * TensorFlow.js code to load and call (exports): encoders give each space's posterior mean and
   * log-variance, decoders the likelihood's mean image in [0, 1].
   */
  networks(): ExportedNetwork[]
  /** The class prior p(. | c) of the conditional space, where the model has one (exports). */
  classPrior(): ClassPrior | null
  dispose(): void
}

export interface ExportedNetwork {
  /** File-safe name: encoder, decoder, encoder_u, ... */
  name: string
  /** What goes in and comes out, in words. */
  description: string
  model: tf.LayersModel
}
