// Seeded randomness, so that generated data and held-out splits are the same on every run and
// every machine for a given seed.

import { seededRandom } from '../../../models/random'

export { shuffleInPlace } from '../../../models/random'

/** mulberry32, shared with the training loop's shuffles: returns numbers in [0, 1). */
export const createRng: (seed: number) => () => number = seededRandom
