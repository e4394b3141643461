// The UMAP core for electron/engine/projection/index.ts, in flat typed arrays: fuzzy simplicial set
// from a kNN graph, initial layout, and the SGD layout optimiser. It follows umap-learn 0.5
// (smooth_knn_dist, compute_membership_strengths, fuzzy union, make_epochs_per_sample,
// optimize_layout_euclidean) so that its maps look like umap-learn's; the differences are
// listed in projection/index.ts.
//
// Only types come from projection-knn (which loads tfjs): the layout worker
// (projection/layout-worker.ts) loads this module and should start fast and small.

import type { KnnGraph, Rng, Ticker } from './knn'

const SMOOTH_K_TOLERANCE = 1e-5
const MIN_K_DIST_SCALE = 1e-3

/** rho (distance to the nearest non-identical neighbour) and sigma per row, such that
 *  sum_j exp(-(d_j - rho) / sigma) = log2(k) over the non-self neighbours. */
export function smoothKnnDist(
  distances: Float32Array,
  n: number,
  k: number,
  localConnectivity = 1,
  skipFirst = true
): { sigmas: Float32Array; rhos: Float32Array } {
  const target = Math.log2(k)
  const sigmas = new Float32Array(n)
  const rhos = new Float32Array(n)
  let meanAll = 0
  for (let t = 0; t < n * k; t++) meanAll += distances[t]
  meanAll /= Math.max(1, n * k)
  const start = skipFirst ? 1 : 0
  for (let i = 0; i < n; i++) {
    const base = i * k
    let lo = 0
    let hi = Infinity
    let mid = 1
    // rho: the localConnectivity-th non-zero distance (interpolated).
    let rho = 0
    if (localConnectivity > 0) {
      const index = Math.floor(localConnectivity)
      const interp = localConnectivity - index
      let nz = 0
      let prev = 0
      let found = false
      let maxNz = 0
      for (let t = 0; t < k; t++) {
        const d = distances[base + t]
        if (d <= 0) continue
        nz++
        maxNz = d
        if (nz === index) {
          rho = d
          prev = d
          if (interp <= SMOOTH_K_TOLERANCE) {
            found = true
            break
          }
        } else if (nz === index + 1 && index > 0) {
          rho = prev + interp * (d - prev)
          found = true
          break
        } else if (index === 0 && nz === 1) {
          rho = interp * d
          found = true
          break
        }
      }
      if (!found && nz > 0 && nz < index) rho = maxNz
    }
    for (let it = 0; it < 64; it++) {
      let psum = 0
      for (let t = start; t < k; t++) {
        const d = distances[base + t] - rho
        psum += d > 0 ? Math.exp(-(d / mid)) : 1
      }
      if (Math.abs(psum - target) < SMOOTH_K_TOLERANCE) break
      if (psum > target) {
        hi = mid
        mid = (lo + hi) / 2
      } else {
        lo = mid
        if (hi === Infinity) mid *= 2
        else mid = (lo + hi) / 2
      }
    }
    let sigma = mid
    if (rho > 0) {
      let meanI = 0
      for (let t = 0; t < k; t++) meanI += distances[base + t]
      meanI /= k
      if (sigma < MIN_K_DIST_SCALE * meanI) sigma = MIN_K_DIST_SCALE * meanI
    } else if (sigma < MIN_K_DIST_SCALE * meanAll) {
      sigma = MIN_K_DIST_SCALE * meanAll
    }
    sigmas[i] = sigma
    rhos[i] = rho
  }
  return { sigmas, rhos }
}

/** The symmetric fuzzy graph as a COO list holding both directions of every edge
 *  (rows sorted), like umap-learn's `graph` after fuzzy union (set_op_mix_ratio = 1). */
export interface FuzzyGraph {
  n: number
  head: Int32Array
  tail: Int32Array
  weight: Float32Array
}

export function fuzzySimplicialSet(knn: KnnGraph, localConnectivity = 1): FuzzyGraph {
  const { n, k, indices, distances } = knn
  const { sigmas, rhos } = smoothKnnDist(distances, n, k, localConnectivity)
  // Directed memberships, CSR with exactly k slots per row (self gets 0 and is dropped).
  const w = new Float32Array(n * k)
  for (let i = 0; i < n; i++) {
    const base = i * k
    for (let t = 0; t < k; t++) {
      const j = indices[base + t]
      if (j === i || j < 0) {
        w[base + t] = 0
        continue
      }
      const d = distances[base + t] - rhos[i]
      w[base + t] = d <= 0 ? 1 : Math.exp(-(d / sigmas[i]))
    }
  }
  // Reverse adjacency (who lists j) as CSR, to find w_ji and the edges only j -> i has.
  const revCount = new Int32Array(n + 1)
  for (let t = 0; t < n * k; t++) if (w[t] > 0) revCount[indices[t] + 1]++
  for (let i = 0; i < n; i++) revCount[i + 1] += revCount[i]
  const revPtr = revCount.slice()
  const revSrc = new Int32Array(revCount[n])
  const revW = new Float32Array(revCount[n])
  for (let i = 0; i < n; i++) {
    for (let t = 0; t < k; t++) {
      const s = i * k + t
      if (w[s] <= 0) continue
      const j = indices[s]
      const p = revPtr[j]++
      revSrc[p] = i
      revW[p] = w[s]
    }
  }
  // Row i of the union = forward entries of i, plus reverse entries (l lists i) that i does not list.
  // First pass counts, second fills.
  let total = 0
  let H = new Int32Array(0)
  let T = new Int32Array(0)
  let W = new Float32Array(0)
  const mark = new Int32Array(n).fill(-1)
  for (let pass = 0; pass < 2; pass++) {
    mark.fill(-1)
    total = 0
    for (let i = 0; i < n; i++) {
      const base = i * k
      let len = 0
      for (let t = 0; t < k; t++) if (w[base + t] > 0) mark[indices[base + t]] = i
      for (let t = 0; t < k; t++) {
        const s = base + t
        if (w[s] <= 0) continue
        if (pass === 1) {
          const j = indices[s]
          // w_ji: does j list i?
          let wji = 0
          for (let u = j * k; u < j * k + k; u++) {
            if (indices[u] === i) {
              wji = w[u]
              break
            }
          }
          const a = w[s]
          H[total + len] = i
          T[total + len] = j
          W[total + len] = a + wji - a * wji
        }
        len++
      }
      for (let p = revCount[i]; p < revCount[i + 1]; p++) {
        const l = revSrc[p]
        if (mark[l] === i) continue // already a forward entry
        if (pass === 1) {
          H[total + len] = i
          T[total + len] = l
          W[total + len] = revW[p]
        }
        len++
      }
      total += len
    }
    if (pass === 0) {
      H = new Int32Array(total)
      T = new Int32Array(total)
      W = new Float32Array(total)
    }
  }
  return { n, head: H, tail: T, weight: W }
}

/** Fit a, b of 1 / (1 + a x^(2b)) to the UMAP target curve (umap-learn find_ab_params):
 *  Gauss-Newton with step halving on 300 points of [0, 3 spread]. */
export function findABParams(spread: number, minDist: number): { a: number; b: number } {
  const xs: number[] = []
  const ys: number[] = []
  for (let i = 0; i < 300; i++) {
    const x = (i * (spread * 3)) / 299
    xs.push(x)
    ys.push(x < minDist ? 1 : Math.exp(-(x - minDist) / spread))
  }
  const loss = (a: number, b: number): number => {
    let s = 0
    for (let i = 0; i < xs.length; i++) {
      const f = 1 / (1 + a * Math.pow(xs[i], 2 * b))
      s += (f - ys[i]) ** 2
    }
    return s
  }
  let a = 1
  let b = 1
  let cur = loss(a, b)
  for (let it = 0; it < 200; it++) {
    // J^T J and J^T r
    let jaa = 0
    let jab = 0
    let jbb = 0
    let ga = 0
    let gb = 0
    for (let i = 0; i < xs.length; i++) {
      const x = xs[i]
      if (x <= 0) continue
      const p = Math.pow(x, 2 * b)
      const den = 1 + a * p
      const f = 1 / den
      const r = f - ys[i]
      const da = -p / (den * den)
      const db = (-a * p * 2 * Math.log(x)) / (den * den)
      jaa += da * da
      jab += da * db
      jbb += db * db
      ga += da * r
      gb += db * r
    }
    const lambda = 1e-9 * (jaa + jbb)
    const det = (jaa + lambda) * (jbb + lambda) - jab * jab
    if (Math.abs(det) < 1e-300) break
    let sa = -((jbb + lambda) * ga - jab * gb) / det
    let sb = -((jaa + lambda) * gb - jab * ga) / det
    let improved = false
    for (let h = 0; h < 30; h++) {
      const na = a + sa
      const nb = b + sb
      if (na > 0 && nb > 0) {
        const l = loss(na, nb)
        if (l < cur) {
          const rel = (cur - l) / Math.max(cur, 1e-300)
          a = na
          b = nb
          cur = l
          improved = rel > 1e-12
          break
        }
      }
      sa /= 2
      sb /= 2
    }
    if (!improved) break
  }
  return { a, b }
}

/** Top principal components of x (n x dim) by Jacobi eigen-decomposition of the covariance. */
export function pcaProject(x: Float32Array, n: number, dim: number, nComp: number): Float32Array {
  const mean = new Float64Array(dim)
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) mean[d] += x[i * dim + d]
  for (let d = 0; d < dim; d++) mean[d] /= Math.max(1, n)
  const C = new Float64Array(dim * dim)
  const row = new Float64Array(dim)
  for (let i = 0; i < n; i++) {
    for (let d = 0; d < dim; d++) row[d] = x[i * dim + d] - mean[d]
    for (let a = 0; a < dim; a++) {
      const ra = row[a]
      for (let b = a; b < dim; b++) C[a * dim + b] += ra * row[b]
    }
  }
  for (let a = 0; a < dim; a++) for (let b = 0; b < a; b++) C[a * dim + b] = C[b * dim + a]
  const { values, vectors } = jacobiEigen(C, dim)
  const order = Array.from({ length: dim }, (_, i) => i).sort((p, q) => values[q] - values[p])
  const out = new Float32Array(n * nComp)
  for (let c = 0; c < nComp; c++) {
    if (c >= dim) break
    const e = order[c]
    for (let i = 0; i < n; i++) {
      let s = 0
      for (let d = 0; d < dim; d++) s += (x[i * dim + d] - mean[d]) * vectors[d * dim + e]
      out[i * nComp + c] = s
    }
  }
  return out
}

function jacobiEigen(A: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(A)
  const v = new Float64Array(n * n)
  for (let i = 0; i < n; i++) v[i * n + i] = 1
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] ** 2
    if (off < 1e-22) break
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]
        if (Math.abs(apq) < 1e-300) continue
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq)
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1))
        const c = 1 / Math.sqrt(t * t + 1)
        const s = t * c
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]
          const akq = a[k * n + q]
          a[k * n + p] = c * akp - s * akq
          a[k * n + q] = s * akp + c * akq
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]
          const aqk = a[q * n + k]
          a[p * n + k] = c * apk - s * aqk
          a[q * n + k] = s * apk + c * aqk
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]
          const vkq = v[k * n + q]
          v[k * n + p] = c * vkp - s * vkq
          v[k * n + q] = s * vkp + c * vkq
        }
      }
    }
  }
  const values = new Float64Array(n)
  for (let i = 0; i < n; i++) values[i] = a[i * n + i]
  return { values, vectors: v }
}

/** umap-learn's noisy_scale_coords: scale so the largest |coordinate| is `maxCoord`, add noise. */
export function noisyScale(y: Float32Array, maxCoord: number, noise: number, rng: Rng): void {
  let m = 0
  for (let i = 0; i < y.length; i++) m = Math.max(m, Math.abs(y[i]))
  const s = m > 0 ? maxCoord / m : 1
  for (let i = 0; i < y.length; i++) y[i] = y[i] * s + noise * rng.gauss()
}

export interface LayoutParams {
  nEpochs: number
  a: number
  b: number
  gamma: number
  initialAlpha: number
  negativeSampleRate: number
}

/** The edges the SGD samples, with umap-learn's per-edge schedule: edge e is sampled every
 *  epochsPerSample[e] epochs (1 for the heaviest edge). */
export interface LayoutEdges {
  head: Int32Array
  tail: Int32Array
  epochsPerSample: Float64Array
}

/** The edges of `graph` kept for optimisation: those sampled at least once over `nEpochs`
 *  (umap-learn drops the others too), in graph order; in SharedArrayBuffers if `shared`. */
export function layoutEdges(graph: FuzzyGraph, nEpochs: number, shared = false): LayoutEdges {
  let wMax = 0
  for (let e = 0; e < graph.weight.length; e++) if (graph.weight[e] > wMax) wMax = graph.weight[e]
  const cut = wMax / nEpochs
  let m = 0
  for (let e = 0; e < graph.weight.length; e++) if (graph.weight[e] >= cut && graph.weight[e] > 0) m++
  const buffer = (bytes: number): ArrayBufferLike => (shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes))
  const head = new Int32Array(buffer(m * 4))
  const tail = new Int32Array(buffer(m * 4))
  const epochsPerSample = new Float64Array(buffer(m * 8))
  let p = 0
  for (let e = 0; e < graph.weight.length; e++) {
    const wt = graph.weight[e]
    if (!(wt >= cut && wt > 0)) continue
    head[p] = graph.head[e]
    tail[p] = graph.tail[e]
    epochsPerSample[p] = wMax / wt // = nEpochs / (nEpochs * w / wMax)
    p++
  }
  return { head, tail, epochsPerSample }
}

/** The edges with their sampling state: umap-learn's epoch_of_next_sample and
 *  epoch_of_next_negative_sample. The threads of a parallel layout share one (in shared memory),
 *  each edge being processed by one thread per epoch. */
export interface LayoutSchedule extends LayoutEdges {
  epochOfNextSample: Float64Array
  epochOfNextNegativeSample: Float64Array
}

/** The initial sampling state of `edges`; `shared` puts all of it (edges included, copied unless
 *  they are there already) in SharedArrayBuffers. */
export function layoutSchedule(edges: LayoutEdges, negativeSampleRate: number, shared = false): LayoutSchedule {
  const m = edges.head.length
  const buffer = (bytes: number): ArrayBufferLike => (shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes))
  const copy = <T extends Int32Array | Float64Array>(a: T, make: (b: ArrayBufferLike) => T): T => {
    if (!shared || a.buffer instanceof SharedArrayBuffer) return a
    const out = make(buffer(a.byteLength))
    out.set(a)
    return out
  }
  const eps = edges.epochsPerSample
  const epochOfNextSample = new Float64Array(buffer(m * 8))
  epochOfNextSample.set(eps)
  const epochOfNextNegativeSample = new Float64Array(buffer(m * 8))
  for (let e = 0; e < m; e++) epochOfNextNegativeSample[e] = eps[e] / negativeSampleRate
  return {
    head: copy(edges.head, (b) => new Int32Array(b)),
    tail: copy(edges.tail, (b) => new Int32Array(b)),
    epochsPerSample: copy(eps, (b) => new Float64Array(b)),
    epochOfNextSample,
    epochOfNextNegativeSample
  }
}

function isSchedule(edges: LayoutEdges): edges is LayoutSchedule {
  return 'epochOfNextSample' in edges
}

/** SGD state: the edges kept for optimisation and umap-learn's per-edge sampling schedule.
 *  Optimizers on several threads may share one schedule and one embedding (Hogwild, see
 *  projection/parallel.ts), driven through beginEpoch/runClaimed on chunks of edges claimed from
 *  shared counters. */
export class LayoutOptimizer {
  readonly nEdges: number
  private readonly head: Int32Array
  private readonly tail: Int32Array
  private readonly epochsPerSample: Float64Array
  private readonly epochOfNextSample: Float64Array
  private readonly epochOfNextNegativeSample: Float64Array
  epoch = 0
  private edgePos = 0
  private rngState = 1
  private readonly tables: CoefficientTables
  private readonly scratchA: Float64Array
  /** Where negative samples' coordinates are read: the embedding itself, or this thread's own
   *  copy of it taken at the start of the epoch (see privateNegativeSamples). */
  private negativeSource: Float32Array

  /** `edges`: the fuzzy graph (its edges are filtered by layoutEdges), edges already kept, or a
   *  schedule (used as it is, not copied: it may be shared). */
  constructor(
    edges: FuzzyGraph | LayoutEdges | LayoutSchedule,
    readonly embedding: Float32Array,
    readonly dim: number,
    readonly params: LayoutParams,
    /** Seeds each epoch's negative sampling; null where every beginEpoch call brings its seed. */
    private readonly rng: Rng | null
  ) {
    this.tables = new CoefficientTables(params.a, params.b, params.gamma)
    this.scratchA = new Float64Array(dim)
    const kept = 'weight' in edges ? layoutEdges(edges, params.nEpochs) : edges
    const schedule = isSchedule(kept) ? kept : layoutSchedule(kept, params.negativeSampleRate)
    this.nEdges = schedule.head.length
    this.head = schedule.head
    this.tail = schedule.tail
    this.epochsPerSample = schedule.epochsPerSample
    this.epochOfNextSample = schedule.epochOfNextSample
    this.epochOfNextNegativeSample = schedule.epochOfNextNegativeSample
    this.negativeSource = embedding
  }

  /** For an embedding shared between threads: read negative samples from a private copy taken
   *  at each beginEpoch. Negative samples are random points that are only read; reading them
   *  from memory that the other cores keep writing costs a cache-line transfer each time, which
   *  made two threads ~50% slower per edge. The copy is at most one epoch old (Hogwild reads are
   *  stale anyway). */
  privateNegativeSamples(): void {
    this.negativeSource = new Float32Array(this.embedding.length)
  }

  get done(): boolean {
    return this.epoch >= this.params.nEpochs
  }

  /** Runs one epoch: umap-learn's optimize_layout_euclidean for a single epoch (move_other =
   *  true, gradient clip 4, linear learning-rate decay). The two gradient coefficients are read
   *  from tables (see CoefficientTables) instead of two Math.pow calls and a division per
   *  sample; the learning rate is folded into the coefficient and the clip bound
   *  (clip(g, 4) * alpha = clip(g * alpha, 4 * alpha) for alpha > 0). */
  step(): void {
    if (this.done) return
    this.stepEdges(this.nEdges)
  }

  /** Processes up to `maxEdges` edges of the current epoch (continuing where the previous call
   *  stopped); finishes the epoch when the last edge is done. Lets a caller yield to the event
   *  loop inside long epochs. Results do not depend on how an epoch is cut into calls. */
  stepEdges(maxEdges: number): void {
    if (this.done) return
    if (this.edgePos === 0) this.beginEpoch()
    const from = this.edgePos
    const to = Math.min(this.nEdges, from + Math.max(1, maxEdges))
    this.runEdges(this.epoch, from, to)
    if (to >= this.nEdges) {
      this.edgePos = 0
      this.epoch++
    } else this.edgePos = to
  }

  /** Starts an epoch's negative-sampling stream from `seed` (by default one number from rng). */
  beginEpoch(seed?: number): void {
    const start = seed ?? this.rng?.next()
    if (start === undefined) throw new Error('LayoutOptimizer.beginEpoch: no seed and no Rng')
    this.rngState = start | 1
    if (this.negativeSource !== this.embedding) this.negativeSource.set(this.embedding)
  }

  /** Processes edges [from, to) as part of epoch `n`, continuing the stream beginEpoch started.
   *  Leaves `epoch` alone: stepEdges keeps that, or a parallel driver (which hands each thread
   *  the ranges it claims) does. */
  runEdges(n: number, from: number, to: number): void {
    const { nEpochs, negativeSampleRate } = this.params
    const alpha = this.params.initialAlpha * (1 - n / nEpochs)
    const clipB = 4 * alpha
    const emb = this.embedding
    const dim = this.dim
    const head = this.head
    const tail = this.tail
    const eps = this.epochsPerSample
    const next = this.epochOfNextSample
    const nextNeg = this.epochOfNextNegativeSample
    const nVertices = (emb.length / dim) | 0
    const negEmb = this.negativeSource
    const tables = this.tables
    const at = tables.attract
    const rt = tables.repel
    const scale = tables.scale
    const last = tables.size - 1
    let state = this.rngState
    const cur = this.scratchA
    const is3 = dim === 3
    for (let e = from; e < to; e++) {
      if (next[e] > n) continue
      const cj = head[e] * dim
      const ck = tail[e] * dim
      // Attraction along the edge.
      let x0 = 0
      let x1 = 0
      let x2 = 0
      let d2 = 0
      if (is3) {
        x0 = emb[cj] - emb[ck]
        x1 = emb[cj + 1] - emb[ck + 1]
        x2 = emb[cj + 2] - emb[ck + 2]
        d2 = x0 * x0 + x1 * x1 + x2 * x2
      } else {
        for (let d = 0; d < dim; d++) {
          const t = emb[cj + d] - emb[ck + d]
          cur[d] = t
          d2 += t * t
        }
      }
      if (d2 > 0) {
        const r = Math.sqrt(d2) * scale
        let gc: number
        if (r < last) {
          const i0 = r | 0
          gc = at[i0] + (r - i0) * (at[i0 + 1] - at[i0])
        } else gc = tables.attractExact(d2)
        gc *= alpha
        if (is3) {
          let g = gc * x0
          g = g > clipB ? clipB : g < -clipB ? -clipB : g
          emb[cj] += g
          emb[ck] -= g
          g = gc * x1
          g = g > clipB ? clipB : g < -clipB ? -clipB : g
          emb[cj + 1] += g
          emb[ck + 1] -= g
          g = gc * x2
          g = g > clipB ? clipB : g < -clipB ? -clipB : g
          emb[cj + 2] += g
          emb[ck + 2] -= g
        } else {
          for (let d = 0; d < dim; d++) {
            let g = gc * cur[d]
            g = g > clipB ? clipB : g < -clipB ? -clipB : g
            emb[cj + d] += g
            emb[ck + d] -= g
          }
        }
      }
      next[e] += eps[e]
      // Repulsion from random points.
      const epn = eps[e] / negativeSampleRate
      const nNeg = Math.floor((n - nextNeg[e]) / epn)
      if (nNeg <= 0) continue
      nextNeg[e] += nNeg * epn
      if (is3) {
        // The head point's coordinates live in registers for the whole negative loop.
        let h0 = emb[cj]
        let h1 = emb[cj + 1]
        let h2 = emb[cj + 2]
        for (let p = 0; p < nNeg; p++) {
          state ^= state << 13
          state ^= state >>> 17
          state ^= state << 5
          const ko = ((((state >>> 0) * nVertices) / 4294967296) | 0) * 3
          const y0 = h0 - negEmb[ko]
          const y1 = h1 - negEmb[ko + 1]
          const y2 = h2 - negEmb[ko + 2]
          const e2 = y0 * y0 + y1 * y1 + y2 * y2
          if (e2 > 0) {
            const r = Math.sqrt(e2) * scale
            let gc: number
            if (r < last) {
              const i0 = r | 0
              gc = rt[i0] + (r - i0) * (rt[i0 + 1] - rt[i0])
            } else gc = tables.repelExact(e2)
            gc *= alpha
            let g = gc * y0
            h0 += g > clipB ? clipB : g < -clipB ? -clipB : g
            g = gc * y1
            h1 += g > clipB ? clipB : g < -clipB ? -clipB : g
            g = gc * y2
            h2 += g > clipB ? clipB : g < -clipB ? -clipB : g
          }
        }
        emb[cj] = h0
        emb[cj + 1] = h1
        emb[cj + 2] = h2
        continue
      }
      for (let p = 0; p < nNeg; p++) {
        state ^= state << 13
        state ^= state >>> 17
        state ^= state << 5
        const ko = ((((state >>> 0) * nVertices) / 4294967296) | 0) * dim
        let e2 = 0
        for (let d = 0; d < dim; d++) {
          const t = emb[cj + d] - negEmb[ko + d]
          cur[d] = t
          e2 += t * t
        }
        if (e2 > 0) {
          const r = Math.sqrt(e2) * scale
          let gc: number
          if (r < last) {
            const i0 = r | 0
            gc = rt[i0] + (r - i0) * (rt[i0 + 1] - rt[i0])
          } else gc = tables.repelExact(e2)
          gc *= alpha
          for (let d = 0; d < dim; d++) {
            const g = gc * cur[d]
            emb[cj + d] += g > clipB ? clipB : g < -clipB ? -clipB : g
          }
        }
      }
    }
    this.rngState = state
  }

  /** Epoch `n` on several threads sharing this optimizer's schedule: claims chunks of
   *  `chunkEdges` edges and runs them, until every chunk is claimed (returns true) or `stop()`
   *  says to stop for now (returns false; call again to go on). Each chunk goes to exactly one
   *  thread, so a thread that is busier or scheduled less simply does fewer of them.
   *  `claims` (shared, zeroed before each epoch) counts chunks claimed [from the front, from the
   *  back, in all]. One thread claims from the front, the others from the back, so that the
   *  two ends work on different points (fewer collisions and cache-line transfers between cores)
   *  until they meet. */
  runClaimed(n: number, claims: Int32Array, chunkEdges: number, fromBack: boolean, stop?: () => boolean): boolean {
    const nChunks = Math.ceil(this.nEdges / chunkEdges)
    for (;;) {
      if (Atomics.add(claims, 2, 1) >= nChunks) return true
      // At most nChunks claims succeed in all, so the front and back indices never overlap.
      const chunk = fromBack ? nChunks - 1 - Atomics.add(claims, 1, 1) : Atomics.add(claims, 0, 1)
      const from = chunk * chunkEdges
      this.runEdges(n, from, Math.min(this.nEdges, from + chunkEdges))
      if (stop?.()) return false
    }
  }

  /** Runs the layout in chunks of `chunkEdges` edges until `ticker` says it is time to yield
   *  or the run is done; returns the number of epochs completed. */
  runSlice(ticker: Ticker, chunkEdges = 65536): number {
    const start = this.epoch
    while (!this.done) {
      this.stepEdges(chunkEdges)
      if (ticker.due()) break
    }
    return this.epoch - start
  }
}

/** The SGD's two gradient coefficients as functions of r = |y_i - y_j|, tabulated on [0, 64] at
 *  1/128 steps and read with linear interpolation. With q = 1 / (1 + a d2^b), d2 = r^2:
 *    attraction: -2ab d2^(b-1) / (1 + a d2^b)   = -2b (1 - q) / d2
 *    repulsion:   2 gamma b / ((0.001 + d2)(1 + a d2^b)) = 2 gamma b q / (0.001 + d2)
 *  Math.pow costs ~85 ns on this machine and made up two thirds of an epoch. Measured relative
 *  interpolation error (a, b for min_dist 0.1): < 1e-4 for r > 1 and < 1.2e-3 for r > 0.2;
 *  up to 1.5% below r = 0.2, where the repulsive update is clipped anyway and the attractive
 *  one (coefficient * r ~ r^(2b-1)) is tiny. Entry 0 holds the attraction at r = 1/256, since
 *  it diverges like d2^(b-1) at 0. Beyond r = 64 (rare: layouts span about +-10) the exact
 *  formulas are used. */
export class CoefficientTables {
  readonly scale = 128
  readonly size: number
  readonly attract: Float64Array
  readonly repel: Float64Array
  constructor(
    private readonly a: number,
    private readonly b: number,
    private readonly gamma: number,
    maxR = 64
  ) {
    this.size = maxR * this.scale + 2
    this.attract = new Float64Array(this.size)
    this.repel = new Float64Array(this.size)
    for (let i = 0; i < this.size; i++) {
      const r = i === 0 ? 0.5 / this.scale : i / this.scale
      this.attract[i] = this.attractExact(r * r)
      this.repel[i] = this.repelExact(i === 0 ? 0 : r * r)
    }
  }
  attractExact(d2: number): number {
    const p = Math.pow(d2, this.b)
    return (-2 * this.a * this.b * (p / d2)) / (1 + this.a * p)
  }
  repelExact(d2: number): number {
    return (2 * this.gamma * this.b) / ((0.001 + d2) * (1 + this.a * Math.pow(d2, this.b)))
  }
}
