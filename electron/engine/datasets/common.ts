// Pieces every loader shares: options, the seeded held-out split, class-balance notes, the
// bounded concurrency pool.

import { availableParallelism } from 'node:os'
import { seededRandom, shuffleInPlace } from '../../../models/random'

export type FitPolicy = 'cover' | 'contain'

export interface LoadOptions {
  /** Square side to resize to. Default: depends on the source (see folder.ts chooseTargetSize). */
  size?: number
  /** 'cover' (default) fills the square and centre-crops; 'contain' fits inside and pads with white. */
  fit?: FitPolicy
  /** Fraction of items held out when the source defines no split. Default 0.1. */
  heldOutFraction?: number
  /** Seed of the held-out split (and nothing else). Default 0. */
  seed?: number
  /** Concurrent decodes. Default 2 x CPU count. */
  concurrency?: number
  /** Cancels a load in progress; the promise rejects with the signal's reason. */
  signal?: AbortSignal
  /**
   * Folder for the load cache of image folders (the engine passes <dataDir>/cache). When set, a
   * folder whose files are unchanged since its last load with the same size, fit, heldOutFraction
   * and seed is read back from there instead of decoded. No cache when absent.
   */
  cacheDir?: string
}

export const DEFAULT_HELD_OUT_FRACTION = 0.1
export const DEFAULT_SEED = 0
export const MIN_SIZE = 4
export const MAX_SIZE = 512

export function validateOptions(options: LoadOptions): void {
  const { size, heldOutFraction, concurrency, fit, cacheDir } = options
  if (size !== undefined && (!Number.isInteger(size) || size < MIN_SIZE || size > MAX_SIZE)) {
    throw new RangeError(`size must be a whole number from ${MIN_SIZE} to ${MAX_SIZE}, got ${size}`)
  }
  if (heldOutFraction !== undefined && !(heldOutFraction >= 0 && heldOutFraction < 1)) {
    throw new RangeError(`heldOutFraction must be in [0, 1), got ${heldOutFraction}`)
  }
  if (concurrency !== undefined && (!Number.isInteger(concurrency) || concurrency < 1)) {
    throw new RangeError(`concurrency must be a positive whole number, got ${concurrency}`)
  }
  if (fit !== undefined && fit !== 'cover' && fit !== 'contain') {
    throw new RangeError(`fit must be 'cover' or 'contain', got ${String(fit)}`)
  }
  if (cacheDir !== undefined && (typeof cacheDir !== 'string' || cacheDir === '')) {
    throw new RangeError(`cacheDir must be a folder path, got ${JSON.stringify(cacheDir)}`)
  }
}

export function defaultConcurrency(): number {
  return 2 * availableParallelism()
}

/**
 * Marks items held out (1) or training (0). Labelled data is split per class so every class is
 * represented in both parts in the same proportion; the seed fixes which items.
 */
export function assignHeldOutSplit(count: number, labels: Int32Array | null, fraction: number, seed: number): Uint8Array {
  const split = new Uint8Array(count)
  if (fraction <= 0 || count === 0) return split
  const random = seededRandom(seed)
  const groups = new Map<number, number[]>()
  for (let i = 0; i < count; i++) {
    const key = labels ? labels[i] : 0
    let group = groups.get(key)
    if (!group) groups.set(key, (group = []))
    group.push(i)
  }
  for (const key of [...groups.keys()].sort((a, b) => a - b)) {
    const members = shuffleInPlace(groups.get(key)!, random)
    // Never hold out a whole class: a class must stay trainable.
    const heldOut = Math.min(Math.round(members.length * fraction), members.length - 1)
    for (let k = 0; k < heldOut; k++) split[members[k]] = 1
  }
  return split
}

export function countClasses(labels: Int32Array, classCount: number): number[] {
  const counts = new Array<number>(classCount).fill(0)
  for (let i = 0; i < labels.length; i++) counts[labels[i]]++
  return counts
}

/** A ratio largest/smallest from which we warn that training will favour the big classes. */
export const IMBALANCE_RATIO = 5

export function classBalanceNotes(classNames: string[], counts: number[]): string[] {
  const notes: string[] = []
  if (classNames.length === 1) {
    notes.push(`Only one class ("${classNames[0]}"): fine for the plain VAE, but the class-conditional ` + 'model (CDVAE) needs at least 2 classes.')
    return notes
  }
  if (counts.length < 2) return notes
  let largest = 0
  let smallest = 0
  for (let c = 1; c < counts.length; c++) {
    if (counts[c] > counts[largest]) largest = c
    if (counts[c] < counts[smallest]) smallest = c
  }
  const ratio = counts[largest] / Math.max(1, counts[smallest])
  if (ratio >= IMBALANCE_RATIO) {
    const listed = classNames
      .map((name, c) => `${name}: ${counts[c]}`)
      .slice(0, 20)
      .join(', ')
    const more = classNames.length > 20 ? `, ... (${classNames.length - 20} more)` : ''
    notes.push(
      `Classes are very unbalanced: "${classNames[largest]}" has ${counts[largest]} items, ` +
        `"${classNames[smallest]}" only ${counts[smallest]} (${ratio.toFixed(1)}x). ` +
        `Counts: ${listed}${more}.`
    )
  }
  return notes
}

export function splitNote(split: Uint8Array, fraction: number, seed: number, labelled: boolean): string {
  let heldOut = 0
  for (let i = 0; i < split.length; i++) heldOut += split[i]
  if (fraction <= 0) return 'No held-out split (heldOutFraction is 0): every item is used for training.'
  return (
    `Held-out split: ${heldOut} of ${split.length} items (${Math.round(fraction * 100)}%` + `${labelled ? ' of each class' : ''}), drawn with seed ${seed}.`
  )
}

const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'variant' })
/** Orders "2" before "10" and "img2.png" before "img10.png", the way people number files. */
export function naturalCompare(a: string, b: string): number {
  return collator.compare(a, b) || (a < b ? -1 : a > b ? 1 : 0)
}

/**
 * Runs `task` over `items` with at most `limit` in flight, keeping results in input order.
 * Bounded because thousands of simultaneous sharp calls would exhaust memory and file handles.
 */
export async function mapPool<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>, signal?: AbortSignal): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      signal?.throwIfAborted()
      const index = next++
      results[index] = await task(items[index], index)
    }
  }
  const workers: Promise<void>[] = []
  for (let w = 0; w < Math.min(limit, items.length); w++) workers.push(worker())
  await Promise.all(workers)
  signal?.throwIfAborted()
  return results
}
