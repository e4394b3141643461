// Nearest-neighbour search for the projection module (electron/engine/projection/index.ts).
//
// Three routes, all returning the same layout (row-major Int32Array indices and Float32Array
// Euclidean distances, n * k, each row sorted by ascending distance, the point itself first):
//
// - `bruteForceKnn`: plain JavaScript, exact. The reference, and the route for small sets.
// - `exactKnnTf`: exact, through tfjs matrix products in blocks (2ab - |b|^2 as ONE matMul of
//   augmented matrices, then tf.topk per block), on whatever tf backend is active. On a GPU
//   backend this is the fast route; on the single-threaded wasm backend it costs ~0.4-0.5 ms
//   per query row at n = 60k (measured: ~28 s for 60k, the matMul alone ~5 GFLOP/s because the
//   inner dimension is only 17), so there it is only used for small n.
// - `nnDescentKnn`: approximate, random-projection-tree initialisation + NN-descent (the
//   pynndescent algorithm that umap-learn uses), all in typed arrays, on this thread plus any
//   extra threads the caller lends it (projection/nndescent.ts; the graph is the same either
//   way). Recall against the exact graph is typically > 0.97 on 16-d latents, and it is what
//   makes 60k points fast here.
//
// Every long loop goes through a `Ticker` so that the caller's event loop keeps running
// (progress events, cancellation through an AbortSignal).

import * as tf from '@tensorflow/tfjs'
import { abortReason } from './cancel'
import { heapPush, nnDescent, type NNDescentHelper, type NNDescentOptions } from './nndescent'

export { abortError } from './cancel'
export { Rng, localityOrder, type NNDescentHelper, type NNDescentOptions } from './nndescent'

export interface KnnGraph {
  n: number
  k: number
  /** n * k neighbour indices, row i sorted by ascending distance, row i starts with i itself. */
  indices: Int32Array
  /** n * k Euclidean distances matching `indices`. */
  distances: Float32Array
}

/** Cooperative scheduling: call `await ticker.tick()` often; it yields to the event loop (and
 *  checks the AbortSignal) only when `sliceMs` has passed since the last yield. */
export class Ticker {
  private last = performance.now()
  constructor(
    /** The caller's cancellation, if any. */
    readonly signal?: AbortSignal,
    private readonly sliceMs = 25
  ) {}

  /** True when the caller should `await yieldNow()`: cheap to call in hot loops. */
  due(): boolean {
    return performance.now() - this.last >= this.sliceMs
  }

  async tick(): Promise<void> {
    if (this.due()) await this.yieldNow()
  }

  async yieldNow(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve))
    this.last = performance.now()
    this.throwIfAborted()
  }

  throwIfAborted(): void {
    if (this.signal?.aborted) throw abortReason(this.signal)
  }
}

// ------------------------------------------------------------------------------------------
// Exact, plain JS.

/** Exact kNN of `queries` (m x dim) among `data` (n x dim); rows sorted by distance. For a fit
 *  use `bruteForceKnn`, which also puts each point first in its own row. Partial distances are
 *  abandoned as soon as they exceed the current k-th best (checked every 4 dimensions), which
 *  skips most of the arithmetic on clustered data. */
export function bruteForceKnnQuery(
  data: Float32Array,
  n: number,
  queries: Float32Array,
  m: number,
  dim: number,
  k: number
): { indices: Int32Array; distances: Float32Array } {
  const kk = Math.min(k, n)
  const idx = new Int32Array(m * kk).fill(-1)
  const dist = new Float32Array(m * kk).fill(Infinity)
  const q = new Float64Array(dim)
  const dim4 = dim & ~3
  for (let qi = 0; qi < m; qi++) {
    for (let d = 0; d < dim; d++) q[d] = queries[qi * dim + d]
    const base = qi * kk
    let worst = Infinity
    for (let j = 0; j < n; j++) {
      const oj = j * dim
      let s = 0
      let d = 0
      for (; d < dim4; d += 4) {
        const t0 = q[d] - data[oj + d]
        const t1 = q[d + 1] - data[oj + d + 1]
        const t2 = q[d + 2] - data[oj + d + 2]
        const t3 = q[d + 3] - data[oj + d + 3]
        s += t0 * t0 + t1 * t1 + t2 * t2 + t3 * t3
        if (s > worst) break
      }
      if (s > worst) continue
      for (; d < dim; d++) {
        const t = q[d] - data[oj + d]
        s += t * t
      }
      if (s < worst) {
        heapPush(idx, dist, null, qi, kk, j, s, 0)
        worst = dist[base]
      }
    }
  }
  return sortRows(m, kk, idx, dist)
}

function sortRows(m: number, k: number, idx: Int32Array, dist: Float32Array): { indices: Int32Array; distances: Float32Array } {
  const indices = new Int32Array(m * k)
  const distances = new Float32Array(m * k)
  const order = new Int32Array(k)
  for (let i = 0; i < m; i++) {
    const base = i * k
    for (let t = 0; t < k; t++) order[t] = t
    for (let a = 1; a < k; a++) {
      const v = order[a]
      const dv = dist[base + v]
      const iv = idx[base + v]
      let b = a - 1
      // ties broken by index so that every route agrees on exact ties
      while (b >= 0 && (dist[base + order[b]] > dv || (dist[base + order[b]] === dv && idx[base + order[b]] > iv))) {
        order[b + 1] = order[b]
        b--
      }
      order[b + 1] = v
    }
    for (let t = 0; t < k; t++) {
      indices[base + t] = idx[base + order[t]]
      distances[base + t] = Math.sqrt(dist[base + order[t]])
    }
  }
  return { indices, distances }
}

export function bruteForceKnn(data: Float32Array, n: number, dim: number, k: number): KnnGraph {
  const r = bruteForceKnnQuery(data, n, data, n, dim, k)
  forceSelfFirst(n, Math.min(k, n), r.indices, r.distances)
  return { n, k: Math.min(k, n), indices: r.indices, distances: r.distances }
}

/** Duplicated points tie at distance 0 with the point itself: make sure row i starts with i. */
function forceSelfFirst(n: number, k: number, indices: Int32Array, distances: Float32Array): void {
  for (let i = 0; i < n; i++) {
    const base = i * k
    if (indices[base] === i) continue
    let p = -1
    for (let t = 1; t < k; t++) if (indices[base + t] === i) p = t
    if (p < 0) p = k - 1 // self fell off the end (more than k exact duplicates): drop the last
    for (let t = p; t > 0; t--) {
      indices[base + t] = indices[base + t - 1]
      distances[base + t] = distances[base + t - 1]
    }
    indices[base] = i
    distances[base] = 0
  }
}

// ------------------------------------------------------------------------------------------
// Exact, tfjs blocks.

/** Exact kNN through tfjs matrix products on the active backend. Distances are recomputed in
 *  float64 JS for the k winners (the |a|^2 + |b|^2 - 2ab form loses precision in float32). */
export async function exactKnnTf(
  data: Float32Array,
  n: number,
  dim: number,
  k: number,
  ticker?: Ticker,
  onBlock?: (done: number) => void,
  queries?: { data: Float32Array; m: number }
): Promise<{ indices: Int32Array; distances: Float32Array }> {
  const qData = queries ? queries.data : data
  const m = queries ? queries.m : n
  const kk = Math.min(k, n)
  const D = dim + 1
  // R^T = [x^T; |x|^2], Q = [2x, -1]  =>  (Q R^T)_ij = 2 q_i.x_j - |x_j|^2, largest = nearest.
  const rt = new Float32Array(D * n)
  for (let j = 0; j < n; j++) {
    let s = 0
    for (let d = 0; d < dim; d++) {
      const v = data[j * dim + d]
      rt[d * n + j] = v
      s += v * v
    }
    rt[dim * n + j] = s
  }
  const RT = tf.tensor2d(rt, [D, n])
  // Keep each score block near 16 MB so the wasm heap does not balloon.
  const block = Math.max(16, Math.min(1024, Math.floor((4 << 20) / Math.max(1, n))))
  const indices = new Int32Array(m * kk)
  const distances = new Float32Array(m * kk)
  const qb = new Float32Array(block * D)
  const scratchI = new Int32Array(kk)
  const scratchD = new Float32Array(kk)
  try {
    for (let r0 = 0; r0 < m; r0 += block) {
      const r1 = Math.min(m, r0 + block)
      const rows = r1 - r0
      for (let r = 0; r < rows; r++) {
        for (let d = 0; d < dim; d++) qb[r * D + d] = 2 * qData[(r0 + r) * dim + d]
        qb[r * D + dim] = -1
      }
      const top = tf.tidy(() => {
        const Q = tf.tensor2d(qb.subarray(0, rows * D), [rows, D])
        const S = tf.matMul(Q, RT)
        return tf.topk(S, kk, true)
      })
      const ti = (await top.indices.data()) as Int32Array
      top.values.dispose()
      top.indices.dispose()
      for (let r = 0; r < rows; r++) {
        const q = r0 + r
        const base = r * kk
        for (let t = 0; t < kk; t++) {
          const j = ti[base + t]
          scratchI[t] = j
          let s = 0
          for (let d = 0; d < dim; d++) {
            const v = qData[q * dim + d] - data[j * dim + d]
            s += v * v
          }
          scratchD[t] = s
        }
        const sorted = sortRows(1, kk, scratchI, scratchD)
        indices.set(sorted.indices, q * kk)
        distances.set(sorted.distances, q * kk)
      }
      onBlock?.(r1)
      if (ticker) await ticker.tick()
    }
  } finally {
    RT.dispose()
  }
  if (!queries) forceSelfFirst(n, kk, indices, distances)
  return { indices, distances }
}

// ------------------------------------------------------------------------------------------
// Approximate: random projection trees + NN-descent.

/** Approximate kNN (k includes the point itself) by RP-tree init + NN-descent (see
 *  projection/nndescent.ts), on this thread plus `helpers` (extra threads; the graph is the same
 *  with or without them). */
export async function nnDescentKnn(
  x: Float32Array,
  n: number,
  dim: number,
  k: number,
  opts: NNDescentOptions = {},
  ticker?: Ticker,
  onProgress?: (fraction: number) => void,
  helpers: NNDescentHelper[] = []
): Promise<KnnGraph> {
  if (Math.min(k, n) - 1 <= 0) return bruteForceKnn(x, n, dim, k)
  return nnDescent(x, n, dim, Math.min(k, n), opts, ticker, onProgress, helpers)
}
