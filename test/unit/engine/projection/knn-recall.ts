// What the projection tests measure a neighbour graph by (not needed by the app itself).
import type { KnnGraph } from '../../../../electron/engine/projection/knn'

/** Fraction of true neighbours (excluding self) found by an approximate graph. */
export function knnRecall(approx: KnnGraph, exact: KnnGraph): number {
  const k = Math.min(approx.k, exact.k)
  let hit = 0
  let total = 0
  for (let i = 0; i < exact.n; i++) {
    const set = new Set<number>()
    for (let t = 1; t < k; t++) set.add(exact.indices[i * exact.k + t])
    for (let t = 1; t < k; t++) if (set.has(approx.indices[i * approx.k + t])) hit++
    total += k - 1
  }
  return total === 0 ? 1 : hit / total
}
