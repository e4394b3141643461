// The model families by name, and defaults sized for a dataset.
import type { ImageShape } from './blocks'
import { Cdvae } from './cdvae'
import { Srvae } from './srvae'
import { FAMILY_DEFAULTS, FAMILY_NAMES } from './families'
import type { Likelihood, ModelConfig, ModelConfigOf, ModelConfigOverrides, ModelFamily, VaeFamilyModel } from './types'
import { Vae } from './vae'
import { ELBO_OBJECTIVE, type ObjectiveConfig } from './objective'

export { FAMILY_DEFAULTS, FAMILY_NAMES, latentDimsFor } from './families'

export * from './types'
export type { ImageShape } from './blocks'

export const MODEL_FAMILIES: { family: ModelFamily; title: string; needsLabels: boolean }[] = FAMILY_NAMES.map((family) => ({
  family,
  title: FAMILY_DEFAULTS[family].title,
  needsLabels: FAMILY_DEFAULTS[family].needsLabels
}))

/**
 * See ModelConfig.classPriorRadius: 10 classes in 8 dimensions start 8.3 to 10.2 prior standard
 * deviations apart. At radius 4 (5.5 to 6.8 apart) a draw of p(z_l | c) at temperature 1, about
 * sqrt(8) = 2.8 from its mean, often fell nearer another class's region: 87% of the CDVAE's
 * generated images were recognised as their class on Fashion-MNIST, 95% at radius 6 (README).
 */
export const DEFAULT_CLASS_PRIOR_RADIUS = 6

export function createModel(stored: ModelConfig): VaeFamilyModel {
  // Runs saved before a field existed lack it: they were trained as its neutral value says.
  const config: ModelConfig = {
    ...stored,
    classPriorRadius: stored.classPriorRadius ?? DEFAULT_CLASS_PRIOR_RADIUS,
    classPriorLearned: stored.classPriorLearned ?? 'means-and-variances',
    objective: { ...ELBO_OBJECTIVE, ...stored.objective }
  }
  switch (config.family) {
    case 'vae':
      return new Vae(config)
    case 'srvae':
      return new Srvae(config)
    case 'cdvae':
      return new Cdvae(config)
  }
}

/** What each family trains on by default (FAMILY_DEFAULTS: the CDVAE's KL weight on z_l and class-independence term on z_u). */
export function defaultObjective(family: ModelFamily): ObjectiveConfig {
  const objective = FAMILY_DEFAULTS[family].objective
  return { ...objective, klWeights: { ...objective.klWeights } }
}

/**
 * Defaults that work for the loaded data: Bernoulli for grayscale (MNIST-like data in [0, 1]),
 * the calibrated Gaussian for colour; 16 latent dimensions in all, as the reference model.
 */
export function defaultModelConfig<F extends ModelFamily>(
  family: F,
  image: ImageShape,
  numClasses: number,
  overrides: ModelConfigOverrides<F> = {}
): ModelConfigOf<F> {
  const likelihood: Likelihood = image.channels === 1 ? 'bernoulli' : 'gaussian'
  const config = {
    family,
    image,
    likelihood,
    gamma: 'learned',
    latentDims: { ...FAMILY_DEFAULTS[family].latentDims },
    numClasses,
    conditionalPrior: false,
    ...(family === 'srvae' ? { downscale: 2 } : {}),
    seed: 0,
    classPriorRadius: DEFAULT_CLASS_PRIOR_RADIUS,
    // Class priors stay where they start (means 8 to 10 standard deviations apart, unit variances):
    // learned variances grow to cover ambiguous items and the classes' draws then overlap.
    classPriorLearned: 'nothing',
    objective: defaultObjective(family),
    ...overrides
  }
  // TypeScript cannot follow `family` into the spread above: this is the one place a family's config is assembled.
  return config as unknown as ModelConfigOf<F>
}
