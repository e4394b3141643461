// Seeded randomness, so that generated data and held-out splits are the same on every run and
// every machine for a given seed.

import { seededRandom } from '../../../models/data'

/** mulberry32, shared with the training loop's shuffles: returns numbers in [0, 1). */
export const createRng: (seed: number) => () => number = seededRandom

/** Fisher-Yates shuffle in place. */
export function shuffleInPlace<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const swap = items[i]
    items[i] = items[j]
    items[j] = swap
  }
  return items
}
