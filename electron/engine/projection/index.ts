// Projection of latent vectors to a 2-D or 3-D map with UMAP, for the engine (pure Node/TS).
//
// Why not umap-js: at 60k points x 16 dims it takes ~103 s and 1.75 GB here, mostly because it
// keeps data as number[][] and its sparse matrices as Map<string, entry>. This module runs the
// same algorithm (umap-learn 0.5) in flat typed arrays:
//
//   1. initial layout: PCA of the latents (first 2/3 components), scaled so the largest
//      coordinate is 10 (umap-learn's `init="pca"` path). It is streamed at once as the first
//      frame, so the map appears immediately and then settles.
//   2. k nearest neighbours (k = nNeighbors, the point itself included, like umap-learn):
//      exact with tfjs matrix products when the active tf backend makes that cheap (a GPU
//      backend, or n <= EXACT_KNN_MAX_N_WASM on wasm), otherwise random-projection trees +
//      NN-descent (what umap-learn uses through pynndescent; recall ~0.98-0.99 here). On the
//      single-threaded wasm backend exact 60k x 60k costs ~30 s, NN-descent ~4-6 s on one thread.
//      NN-descent runs on the layout threads too (projection/nndescent.ts): ~1.3-1.45x faster on two,
//      and the graph is the same bit for bit as on one thread.
//   3. fuzzy simplicial set (smooth kNN distances, memberships, fuzzy union) as a COO edge list.
//   4. SGD layout (umap-learn's optimize_layout_euclidean: per-edge sampling schedule,
//      negative sampling, gradient clip 4, linear learning-rate decay). The curve
//      1/(1 + a d^2b) is read from a table instead of calling Math.pow (85 ns a call here).
//      On two cores and for more than a small map it runs on two threads, like umap-learn's
//      parallel mode (Hogwild SGD over a shared embedding; see projection/parallel.ts): about
//      twice as fast, the same quality, but not bit-reproducible (layoutThreads: 1 is).
//
// Differences from umap-learn, all deliberate: PCA instead of spectral initialisation; fewer
// default epochs for large n (see defaultEpochs); the random streams differ (results are
// reproducible for a given seed on one layout thread, but not bit-identical to umap-learn or
// umap-js).
//
// transform(): new points (e.g. an interpolation path between two latents) are placed where
// umap-learn's transform starts them: at the membership-weighted mean of the embeddings of
// their k nearest training latents (exact search), with umap-learn's transform weights
// (local connectivity 0, sigma from the smooth-kNN equation). The optimisation umap-learn then
// runs on those points is skipped: it keeps paths smooth and costs nothing, and for points
// that lie among the training data the weighted mean is already where they belong.
//
// Coordinates: `embedding` is centred and uniformly scaled so that the bulk of the map (the
// 0.1% .. 99.9% quantiles on every axis) fits [-1, 1]; rare outliers may lie slightly outside.
// The centre and scale are stored (`center`, `scale`), so transform() lands in the same frame.

import { availableParallelism } from 'node:os'
import * as tf from '@tensorflow/tfjs'
import { Rng, Ticker, bruteForceKnn, bruteForceKnnQuery, exactKnnTf, localityOrder, nnDescentKnn, type KnnGraph } from './knn'
import { Layout, closeLayoutThreads, defaultLayoutThreads, spawnLayoutThreads } from './parallel'
import { findABParams, fuzzySimplicialSet, layoutEdges, noisyScale, pcaProject, smoothKnnDist } from './umap'

export interface ProjectionOptions {
  /** Output dimension: 3 (default) or 2. */
  nComponents?: 2 | 3
  /** Neighbourhood size, the point itself included (umap-learn convention). Default 15. */
  nNeighbors?: number
  /** Default 0.1. */
  minDist?: number
  /** Default 1. */
  spread?: number
  /** Default 0. Same seed + same data = same map, exactly with layoutThreads: 1; a parallel
   *  layout gives a slightly different map each run (see projection/parallel.ts). The neighbour
   *  graph is reproducible on any number of threads. */
  seed?: number
  /** Default: defaultEpochs(n). */
  nEpochs?: number
  /** Default 5 (umap-learn). */
  negativeSampleRate?: number
  /** Neighbour search: 'exact' (tfjs or JS brute force), 'approximate' (NN-descent), or
   *  'auto' (default: exact when cheap on the active tf backend, else approximate). */
  knn?: 'auto' | 'exact' | 'approximate'
  /** Minimum time between progress events that carry an embedding. Default 120 ms. */
  frameIntervalMs?: number
  /** Threads for the SGD layout, this one included. 1: one thread, reproducible from the seed.
   *  More: Hogwild SGD over worker threads (faster, not bit-reproducible; see
   *  projection/parallel.ts); falls back to 1 where no worker thread can be started. The same
   *  threads run the approximate neighbour search (same graph as on one thread).
   *  Default: defaultLayoutThreads (2 on a machine with 2 or more cores, except small maps). */
  layoutThreads?: number
}

export type ProjectionPhase = 'init' | 'neighbors' | 'graph' | 'layout' | 'done'

export interface ProjectionProgress {
  phase: ProjectionPhase
  /** Layout epochs completed (0 before the layout starts). */
  epoch: number
  totalEpochs: number
  /** Rough overall progress in [0, 1]. */
  fraction: number
  /** n * nComponents, in the same centred/scaled frame as the final embedding. Present on the
   *  first event (the initial layout), then at most every `frameIntervalMs` during the layout,
   *  and on the last event. A fresh array each time: the receiver may keep it. */
  embedding?: Float32Array
  elapsedMs: number
}

export interface ProjectionStats {
  n: number
  dim: number
  knnMethod: 'exact-tf' | 'exact-js' | 'nn-descent'
  edges: number
  msInit: number
  msNeighbors: number
  msGraph: number
  msLayout: number
  /** Threads the layout ran on (1, or 1 + the worker threads that took part). */
  layoutThreads: number
}

interface ResolvedOptions {
  nComponents: 2 | 3
  nNeighbors: number
  minDist: number
  spread: number
  seed: number
  nEpochs: number
  negativeSampleRate: number
}

/** On the wasm backend exact kNN costs ~n^2 * 8 ns; past this size NN-descent is faster. */
export const EXACT_KNN_MAX_N_WASM = 6000
/** tfjs-node (CPU or CUDA, indistinguishable by backend name). */
export const EXACT_KNN_MAX_N_TFNODE = 20000
/** Plain-JS brute force (no usable tf backend) is only used for small sets. */
export const EXACT_KNN_MAX_N_JS = 2500

/** Default number of layout epochs. umap-learn uses 500 up to 10k points and 200 above; umap-js
 *  steps down 500/400/300/200 by 2.5k. An epoch costs O(edges) = O(n), and on the benchmark
 *  data the quality measures (5-NN label accuracy, trustworthiness) at 60k points were the same
 *  for 40, 70, 100 and 200 epochs, so above 10k points the count falls as 1/sqrt(n) to keep
 *  large maps responsive: 500 up to 2.5k, 200 at 10k, 82 at 60k, 63 at 100k, at least 50. */
export function defaultEpochs(n: number): number {
  if (n <= 2500) return 500
  if (n <= 10000) return Math.round(500 - (300 * (n - 2500)) / 7500)
  return Math.max(50, Math.round(200 * Math.sqrt(10000 / n)))
}

const FORMAT_MAGIC = 0x4a50434c // 'LCPJ' little-endian
const FORMAT_VERSION = 1

interface SerializedHeader {
  format: 'latent-cartographer/projection'
  version: number
  n: number
  dim: number
  nComponents: 2 | 3
  options: ResolvedOptions
  center: number[]
  scale: number
}

export interface ProjectionJSON extends SerializedHeader {
  /** base64 of the little-endian float32 embedding (n * nComponents). */
  embedding: string
  /** base64 of the little-endian float32 training latents (n * dim). */
  latents: string
}

export class LatentProjection {
  private constructor(
    /** n * nComponents, centred and scaled (see the module comment). */
    readonly embedding: Float32Array,
    /** The training latents, n * dim (kept for transform). */
    readonly latents: Float32Array,
    readonly n: number,
    readonly dim: number,
    readonly nComponents: 2 | 3,
    readonly options: Readonly<ResolvedOptions>,
    /** raw layout coordinate = embedding / scale + center */
    readonly center: Float32Array,
    readonly scale: number,
    readonly stats: ProjectionStats | null
  ) {}

  static async fit(
    latents: Float32Array,
    dim: number,
    options: ProjectionOptions = {},
    onProgress?: (p: ProjectionProgress) => void,
    signal?: AbortSignal
  ): Promise<LatentProjection> {
    const t0 = performance.now()
    if (!Number.isInteger(dim) || dim < 1) throw new Error(`dim must be a positive integer, got ${dim}`)
    if (latents.length % dim !== 0) throw new Error(`latents length ${latents.length} is not a multiple of dim ${dim}`)
    const n = latents.length / dim
    if (n < 1) throw new Error('no latents to project')
    for (let i = 0; i < latents.length; i++) {
      if (!Number.isFinite(latents[i])) throw new Error(`latent ${Math.floor(i / dim)} has a non-finite value`)
    }
    const nComponents = options.nComponents ?? 3
    if (nComponents !== 2 && nComponents !== 3) throw new Error('nComponents must be 2 or 3')
    const opts: ResolvedOptions = {
      nComponents,
      nNeighbors: Math.max(2, Math.floor(options.nNeighbors ?? 15)),
      minDist: options.minDist ?? 0.1,
      spread: options.spread ?? 1,
      seed: options.seed ?? 0,
      nEpochs: Math.max(1, Math.floor(options.nEpochs ?? defaultEpochs(n))),
      negativeSampleRate: options.negativeSampleRate ?? 5
    }
    const frameMs = options.frameIntervalMs ?? 120
    const ticker = new Ticker(signal, 30)
    ticker.throwIfAborted()
    const rng = new Rng(opts.seed)
    const elapsed = (): number => performance.now() - t0
    // Extra layout threads start now, so that they have loaded by the time the neighbour search
    // starts (they take part in it, then in the layout); whatever happens next, they are stopped
    // before fit returns or throws. More threads than cores only contend for them.
    const wantedThreads = Math.min(availableParallelism(), Math.max(1, Math.floor(options.layoutThreads ?? defaultLayoutThreads(n, opts.nEpochs))))
    const threads = spawnLayoutThreads(wantedThreads - 1)
    try {
      // Work on a copy relabelled in locality order (see localityOrder); `order[i]` is the
      // caller's index of internal point i. Everything handed out is in the caller's order.
      const order = n > 64 ? localityOrder(latents, n, dim, opts.seed) : Int32Array.from({ length: n }, (_, i) => i)
      const data = new Float32Array(n * dim)
      for (let i = 0; i < n; i++) data.set(latents.subarray(order[i] * dim, order[i] * dim + dim), i * dim)
      const toCaller = (internal: Float32Array): Float32Array => {
        const out = new Float32Array(internal.length)
        for (let i = 0; i < n; i++) {
          for (let c = 0; c < nComponents; c++) out[order[i] * nComponents + c] = internal[i * nComponents + c]
        }
        return out
      }
      const callerLatents = Float32Array.from(latents)

      // 1. Initial layout (PCA), first frame.
      let y = pcaProject(data, n, dim, nComponents)
      noisyScale(y, 10, 1e-4, rng)
      const emit = (phase: ProjectionPhase, epoch: number, fraction: number, withFrame: boolean): void => {
        if (!onProgress) return
        const p: ProjectionProgress = { phase, epoch, totalEpochs: opts.nEpochs, fraction, elapsedMs: elapsed() }
        if (withFrame) p.embedding = toCaller(normalize(y, nComponents).embedding)
        onProgress(p)
      }
      emit('init', 0, 0, true)
      const msInit = elapsed()
      const k = Math.min(opts.nNeighbors, n)
      if (n <= 2 || k < 2) {
        // Too few points for a neighbour graph: the PCA layout is the map.
        const norm = normalize(y, nComponents)
        emit('done', opts.nEpochs, 1, true)
        return new LatentProjection(toCaller(norm.embedding), callerLatents, n, dim, nComponents, opts, norm.center, norm.scale, null)
      }
      await ticker.yieldNow()

      // 2. Neighbours.
      const tN = performance.now()
      const method = chooseKnn(options.knn ?? 'auto', n)
      const knnShare = 0.3
      let lastKnnEmit = 0
      const knnProgress = (f: number): void => {
        const now = performance.now()
        if (now - lastKnnEmit < 100 && f < 1) return
        lastKnnEmit = now
        emit('neighbors', 0, knnShare * f, false)
      }
      let knn: KnnGraph
      if (method === 'exact-tf') {
        const r = await exactKnnTf(data, n, dim, k, ticker, (done) => knnProgress(done / n))
        knn = { n, k, indices: r.indices, distances: r.distances }
      } else if (method === 'exact-js') {
        knn = bruteForceKnn(data, n, dim, k)
      } else {
        // the layout threads help (the graph is the same with or without them)
        knn = await nnDescentKnn(data, n, dim, k, { seed: opts.seed }, ticker, knnProgress, threads)
      }
      const msNeighbors = performance.now() - tN
      ticker.throwIfAborted()

      // 3. Graph.
      const tG = performance.now()
      const graph = fuzzySimplicialSet(knn)
      const msGraph = performance.now() - tG
      emit('graph', 0, knnShare + 0.05, false)
      await ticker.yieldNow()

      // 4. Layout.
      const tL = performance.now()
      const { a, b } = findABParams(opts.spread, opts.minDist)
      const params = { nEpochs: opts.nEpochs, a, b, gamma: 1, initialAlpha: 1, negativeSampleRate: opts.negativeSampleRate }
      const edges = layoutEdges(graph, opts.nEpochs, threads.length > 0)
      const layout = await Layout.create(edges, y, nComponents, params, rng, threads, signal)
      y = layout.embedding // shared memory when other threads take part
      let lastFrame = 0
      let lastEpoch = 0
      while (!layout.done) {
        await layout.runSlice(ticker)
        const now = performance.now()
        const frame = now - lastFrame >= frameMs && layout.epoch > 0 && !layout.done
        if (frame) lastFrame = now
        // one event per completed epoch at most, plus frames; the last epoch is reported by 'done'
        if ((frame || layout.epoch !== lastEpoch) && !layout.done) {
          emit('layout', layout.epoch, knnShare + 0.05 + (0.65 * layout.epoch) / opts.nEpochs, frame)
        }
        lastEpoch = layout.epoch
        await ticker.yieldNow()
      }
      const msLayout = performance.now() - tL
      const norm = normalize(y, nComponents)
      const embedding = toCaller(norm.embedding)
      if (onProgress) {
        onProgress({
          phase: 'done',
          epoch: opts.nEpochs,
          totalEpochs: opts.nEpochs,
          fraction: 1,
          embedding: Float32Array.from(embedding),
          elapsedMs: elapsed()
        })
      }
      const stats: ProjectionStats = { n, dim, knnMethod: method, edges: layout.nEdges, msInit, msNeighbors, msGraph, msLayout, layoutThreads: layout.threads }
      return new LatentProjection(embedding, callerLatents, n, dim, nComponents, opts, norm.center, norm.scale, stats)
    } finally {
      await closeLayoutThreads(threads)
    }
  }

  /** Places new latents (m * dim) into this map; returns m * nComponents in the same frame as
   *  `embedding`. Exact k-NN among the training latents, then the membership-weighted mean of
   *  their embeddings (umap-learn's transform initialisation; see the module comment). */
  transform(newLatents: Float32Array): Float32Array {
    const { dim, n, nComponents } = this
    if (newLatents.length % dim !== 0) throw new Error(`latents length ${newLatents.length} is not a multiple of dim ${dim}`)
    const m = newLatents.length / dim
    const out = new Float32Array(m * nComponents)
    if (m === 0) return out
    const k = Math.min(this.options.nNeighbors, n)
    // Exact nearest training latents (synchronous: paths are short).
    const { indices, distances } = bruteForceKnnQuery(this.latents, n, newLatents, m, dim, k)
    // umap-learn transform: local connectivity max(0, 1 - 1) = 0, so rho = 0.
    const { sigmas } = smoothKnnDist(distances, m, k, 0, false)
    for (let i = 0; i < m; i++) {
      let wsum = 0
      const acc = [0, 0, 0]
      for (let t = 0; t < k; t++) {
        const w = Math.exp(-distances[i * k + t] / sigmas[i])
        const j = indices[i * k + t]
        wsum += w
        for (let c = 0; c < nComponents; c++) acc[c] += w * this.embedding[j * nComponents + c]
      }
      if (!(wsum > 0)) {
        // Every weight underflowed (far outside the data): fall back to the nearest point.
        const j = indices[i * k]
        for (let c = 0; c < nComponents; c++) out[i * nComponents + c] = this.embedding[j * nComponents + c]
        continue
      }
      for (let c = 0; c < nComponents; c++) out[i * nComponents + c] = acc[c] / wsum
    }
    return out
  }

  /** Compact binary form: 'LCPJ', version, JSON header length, JSON header, then the float32
   *  embedding and latents (little-endian, 4-byte aligned). */
  toBytes(): Uint8Array {
    const header = new TextEncoder().encode(JSON.stringify(this.header()))
    const headerPadded = (header.length + 3) & ~3
    const embBytes = this.embedding.length * 4
    const latBytes = this.latents.length * 4
    const buf = new ArrayBuffer(12 + headerPadded + embBytes + latBytes)
    const view = new DataView(buf)
    view.setUint32(0, FORMAT_MAGIC, true)
    view.setUint32(4, FORMAT_VERSION, true)
    view.setUint32(8, header.length, true)
    const bytes = new Uint8Array(buf)
    bytes.set(header, 12)
    writeF32(view, 12 + headerPadded, this.embedding)
    writeF32(view, 12 + headerPadded + embBytes, this.latents)
    return bytes
  }

  static fromBytes(bytes: Uint8Array): LatentProjection {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    if (bytes.byteLength < 12 || view.getUint32(0, true) !== FORMAT_MAGIC) throw new Error('not a serialised projection')
    const version = view.getUint32(4, true)
    if (version !== FORMAT_VERSION) throw new Error(`unsupported projection format version ${version}`)
    const hLen = view.getUint32(8, true)
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(12, 12 + hLen))) as SerializedHeader
    const off = 12 + ((hLen + 3) & ~3)
    const embLen = header.n * header.nComponents
    const latLen = header.n * header.dim
    if (bytes.byteLength < off + 4 * (embLen + latLen)) throw new Error('serialised projection is truncated')
    const embedding = readF32(view, off, embLen)
    const latents = readF32(view, off + 4 * embLen, latLen)
    return LatentProjection.fromParts(header, embedding, latents)
  }

  toJSON(): ProjectionJSON {
    return {
      ...this.header(),
      embedding: Buffer.from(f32Bytes(this.embedding)).toString('base64'),
      latents: Buffer.from(f32Bytes(this.latents)).toString('base64')
    }
  }

  static fromJSON(json: ProjectionJSON): LatentProjection {
    if (json.format !== 'latent-cartographer/projection') throw new Error('not a serialised projection')
    if (json.version !== FORMAT_VERSION) throw new Error(`unsupported projection format version ${json.version}`)
    const emb = Buffer.from(json.embedding, 'base64')
    const lat = Buffer.from(json.latents, 'base64')
    const embedding = readF32(new DataView(emb.buffer, emb.byteOffset, emb.byteLength), 0, emb.byteLength / 4)
    const latents = readF32(new DataView(lat.buffer, lat.byteOffset, lat.byteLength), 0, lat.byteLength / 4)
    return LatentProjection.fromParts(json, embedding, latents)
  }

  private static fromParts(h: SerializedHeader, embedding: Float32Array, latents: Float32Array): LatentProjection {
    if (embedding.length !== h.n * h.nComponents || latents.length !== h.n * h.dim) throw new Error('serialised projection has inconsistent sizes')
    return new LatentProjection(embedding, latents, h.n, h.dim, h.nComponents, h.options, Float32Array.from(h.center), h.scale, null)
  }

  private header(): SerializedHeader {
    return {
      format: 'latent-cartographer/projection',
      version: FORMAT_VERSION,
      n: this.n,
      dim: this.dim,
      nComponents: this.nComponents,
      options: { ...this.options },
      center: Array.from(this.center),
      scale: this.scale
    }
  }
}

// ------------------------------------------------------------------------------------------

function activeTfBackend(): string | null {
  try {
    return tf.engine().backendName ?? null
  } catch {
    return null
  }
}

function chooseKnn(mode: 'auto' | 'exact' | 'approximate', n: number): ProjectionStats['knnMethod'] {
  const backend = activeTfBackend()
  const tfUsable = backend !== null && backend !== 'cpu'
  if (mode === 'approximate') return n <= 64 ? 'exact-js' : 'nn-descent'
  if (mode === 'exact') return tfUsable ? 'exact-tf' : 'exact-js'
  if (n <= 64) return 'exact-js'
  if (tfUsable) {
    // webgl/webgpu: a GPU. 'tensorflow' (tfjs-node) may be CPU or GPU: exact up to a size that
    // is cheap even on the CPU build. wasm (single-threaded here) and others: small n only.
    if (backend === 'webgl' || backend === 'webgpu') return 'exact-tf'
    if (backend === 'tensorflow' && n <= EXACT_KNN_MAX_N_TFNODE) return 'exact-tf'
    if (n <= EXACT_KNN_MAX_N_WASM) return 'exact-tf'
  }
  return n <= EXACT_KNN_MAX_N_JS ? 'exact-js' : 'nn-descent'
}

/** Centre (midpoint of the 0.1%/99.9% quantiles per axis) and one uniform scale that maps the
 *  widest axis's quantile range onto [-1, 1]. */
function normalize(y: Float32Array, nc: number): { embedding: Float32Array; center: Float32Array; scale: number } {
  const n = y.length / nc
  const center = new Float32Array(nc)
  let halfRange = 0
  const step = Math.max(1, Math.floor(n / 8192))
  const m = Math.ceil(n / step)
  const col = new Float32Array(m)
  for (let c = 0; c < nc; c++) {
    for (let s = 0, i = 0; i < n; i += step, s++) col[s] = y[i * nc + c]
    col.sort()
    const lo = col[Math.floor(0.001 * (m - 1))]
    const hi = col[Math.ceil(0.999 * (m - 1))]
    center[c] = (lo + hi) / 2
    halfRange = Math.max(halfRange, (hi - lo) / 2)
  }
  const scale = halfRange > 0 ? 1 / halfRange : 1
  const embedding = new Float32Array(y.length)
  for (let i = 0; i < n; i++) for (let c = 0; c < nc; c++) embedding[i * nc + c] = (y[i * nc + c] - center[c]) * scale
  return { embedding, center, scale }
}

function f32Bytes(a: Float32Array): Uint8Array {
  const out = new Uint8Array(a.length * 4)
  writeF32(new DataView(out.buffer), 0, a)
  return out
}

function writeF32(view: DataView, offset: number, a: Float32Array): void {
  for (let i = 0; i < a.length; i++) view.setFloat32(offset + 4 * i, a[i], true)
}

function readF32(view: DataView, offset: number, length: number): Float32Array {
  const out = new Float32Array(length)
  for (let i = 0; i < length; i++) out[i] = view.getFloat32(offset + 4 * i, true)
  return out
}

// ------------------------------------------------------------------------------------------
// Quality measures.

/** Leave-one-out k-NN classification accuracy of `points` (n * dim) with `labels`: each point
 *  is classified by the majority label of its k nearest other points (ties: the label whose
 *  nearest member is closest). Exact, O(n^2 * dim); pass `sample` to score only that many
 *  query points (evenly spaced), still against all n. */
export function knnClassAccuracy(points: Float32Array, dim: number, labels: Int32Array, k = 5, sample?: number): number {
  const n = points.length / dim
  if (labels.length !== n) throw new Error(`labels length ${labels.length} != number of points ${n}`)
  if (n < 2) return 1
  const queries = pickQueries(n, sample)
  const kk = Math.min(k + 1, n)
  let correct = 0
  const counts = new Map<number, number>()
  const qdata = new Float32Array(queries.length * dim)
  for (let s = 0; s < queries.length; s++) qdata.set(points.subarray(queries[s] * dim, queries[s] * dim + dim), s * dim)
  const { indices } = bruteForceKnnQuery(points, n, qdata, queries.length, dim, kk)
  for (let s = 0; s < queries.length; s++) {
    const i = queries[s]
    counts.clear()
    let used = 0
    const order: number[] = []
    for (let t = 0; t < kk && used < k; t++) {
      const j = indices[s * kk + t]
      if (j === i) continue
      const l = labels[j]
      if (!counts.has(l)) order.push(l)
      counts.set(l, (counts.get(l) ?? 0) + 1)
      used++
    }
    let best = order[0]
    for (const l of order) if ((counts.get(l) ?? 0) > (counts.get(best) ?? 0)) best = l
    if (best === labels[i]) correct++
  }
  return correct / queries.length
}

/** Trustworthiness (Venna & Kaski; sklearn.manifold.trustworthiness): 1 - penalty for points
 *  that are among the k nearest neighbours in `low` but not in `high`, weighted by how far
 *  down the high-dimensional ranking they are. 1 = every low-D neighbourhood is genuine.
 *  O(n^2) overall; `sample` scores only that many query points (evenly spaced). */
export function trustworthiness(high: Float32Array, highDim: number, low: Float32Array, lowDim: number, k = 15, sample?: number): number {
  const n = high.length / highDim
  if (low.length / lowDim !== n) throw new Error('high and low have different numbers of points')
  if (k >= n / 2) throw new Error(`k = ${k} must be < n / 2 = ${n / 2}`)
  const queries = pickQueries(n, sample)
  const qLow = new Float32Array(queries.length * lowDim)
  for (let s = 0; s < queries.length; s++) qLow.set(low.subarray(queries[s] * lowDim, queries[s] * lowDim + lowDim), s * lowDim)
  const lowNN = bruteForceKnnQuery(low, n, qLow, queries.length, lowDim, k + 1)
  const dHigh = new Float64Array(n)
  const thr = new Float64Array(k)
  const below = new Int32Array(k)
  let penalty = 0
  for (let s = 0; s < queries.length; s++) {
    const i = queries[s]
    for (let j = 0; j < n; j++) {
      let acc = 0
      for (let d = 0; d < highDim; d++) {
        const t = high[i * highDim + d] - high[j * highDim + d]
        acc += t * t
      }
      dHigh[j] = acc
    }
    // The k low-D neighbours of i (excluding i itself), by their high-D distance.
    let m = 0
    for (let t = 0; t < k + 1 && m < k; t++) {
      const j = lowNN.indices[s * (k + 1) + t]
      if (j === i) continue
      thr[m++] = dHigh[j]
    }
    const sorted = Array.from(thr.subarray(0, m)).sort((p, q) => p - q)
    // rank(j) = 1 + #{l != i : dHigh[l] < dHigh[j]}; count all thresholds in one pass.
    below.fill(0)
    for (let l = 0; l < n; l++) {
      if (l === i) continue
      const v = dHigh[l]
      // number of thresholds strictly greater than v  ->  those thresholds get +1
      let lo = 0
      let hi = m
      while (lo < hi) {
        const mid = (lo + hi) >> 1
        if (sorted[mid] > v) hi = mid
        else lo = mid + 1
      }
      if (lo < m) below[lo]++
    }
    let run = 0
    for (let t = 0; t < m; t++) {
      run += below[t]
      const rank = run + 1 // points strictly closer than sorted[t], plus one
      if (rank > k) penalty += rank - k
    }
  }
  const q = queries.length
  return 1 - (2 / (q * k * (2 * n - 3 * k - 1))) * penalty
}

function pickQueries(n: number, sample?: number): Int32Array {
  if (sample === undefined || sample >= n) return Int32Array.from({ length: n }, (_, i) => i)
  const m = Math.max(1, Math.floor(sample))
  const q = new Int32Array(m)
  for (let s = 0; s < m; s++) q[s] = Math.floor(((s + 0.5) * n) / m)
  return q
}
