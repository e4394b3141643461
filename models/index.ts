// The model families by name, and defaults sized for a dataset.
import type { ImageShape } from './blocks'
import { Cdvae } from './cdvae'
import { Srvae } from './srvae'
import type { Likelihood, ModelConfig, ModelFamily, VaeFamilyModel } from './types'
import { Vae } from './vae'

export * from './types'
export type { ImageShape } from './blocks'

export const MODEL_FAMILIES: { family: ModelFamily; title: string; needsLabels: boolean }[] = [
  { family: 'vae', title: 'VAE', needsLabels: false },
  { family: 'srvae', title: 'SRVAE (u, y, z)', needsLabels: false },
  { family: 'cdvae', title: 'CDVAE (z_l, z_u)', needsLabels: true }
]

export function createModel(config: ModelConfig): VaeFamilyModel {
  switch (config.family) {
    case 'vae':
      return new Vae(config)
    case 'srvae':
      return new Srvae(config)
    case 'cdvae':
      return new Cdvae(config)
  }
}

/**
 * Defaults that work for the loaded data: Bernoulli for grayscale (MNIST-like data in [0, 1]),
 * the calibrated Gaussian for colour; 16 latent dimensions in all, as the reference model.
 */
export function defaultModelConfig(
  family: ModelFamily,
  image: ImageShape,
  numClasses: number,
  overrides: Partial<ModelConfig> = {}
): ModelConfig {
  const likelihood: Likelihood = image.channels === 1 ? 'bernoulli' : 'gaussian'
  const latentDims: Record<string, number> =
    family === 'vae' ? { z: 16 } : family === 'srvae' ? { u: 8, z: 16 } : { z_l: 8, z_u: 8 }
  return {
    family,
    image,
    likelihood,
    gamma: 'learned',
    latentDims,
    numClasses,
    conditionalPrior: false,
    downscale: 2,
    seed: 0,
    ...overrides
  }
}
