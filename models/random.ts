// Seeded randomness without dependencies, for the training loop's shuffles, the loaders' splits and
// the renderer's draw order alike.

/** A small seeded PRNG (mulberry32): shuffles are reproducible from the run's seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Fisher-Yates shuffle in place (arrays and typed arrays alike). */
export function shuffleInPlace<A extends { length: number; [index: number]: unknown }>(items: A, random: () => number): A {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const swap = items[i]
    items[i] = items[j]
    items[j] = swap
  }
  return items
}

/**
 * A seed as TensorFlow.js takes it. tfjs treats 0 as "no seed" (tf.randomNormal(shape, 0, 1,
 * 'float32', 0) draws fresh values on every call), so 0 and the positive seeds move up by one:
 * every integer still maps to its own stream, and no seed the project passes is ever 0.
 */
export const tfSeed = (seed: number): number => (seed >= 0 ? seed + 1 : seed)
