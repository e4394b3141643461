// How the window's and the CLI's one "latent size" knob spreads over a family's latent spaces. Pure
// arithmetic with no TensorFlow, so the window shows the split the engine will build.

/** The knob's value in a new window: every family's default latent sizes (FAMILY_DEFAULTS) come from it. */
export const DEFAULT_LATENT_SIZE = 16

/** One space's part of the knob: floor(size * share), at least `min` dimensions. */
export interface LatentShare {
  share: number
  min: number
}

/** Each space's dimensions for a knob of `size`, in the order of `shares`. */
export function spreadLatentSize(shares: Readonly<Record<string, LatentShare>>, size: number): Record<string, number> {
  return Object.fromEntries(Object.entries(shares).map(([space, { share, min }]) => [space, Math.max(min, Math.floor(size * share))]))
}
