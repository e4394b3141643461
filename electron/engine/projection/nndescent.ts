// Approximate k nearest neighbours by random-projection-tree initialisation + NN-descent (the
// pynndescent algorithm that umap-learn uses), in flat typed arrays, on one thread or several.
// projection/knn.ts wraps it as `nnDescentKnn`; the extra threads are the layout worker threads
// (projection/layout-worker.ts), which import this module, so it must not import tfjs.
//
// Phases: (1) a forest of random projection trees, every pair of points sharing a leaf is a
// candidate; (2) NN-descent iterations: candidate lists (uniform samples of each point's
// forward and reverse neighbours, split into "new" and "old"), then the local join (every
// new-new and new-old pair among a point's candidates is a candidate edge), until an iteration
// changes fewer than delta * n * k heap entries. The neighbour lists are bounded max-heaps, one
// row per point.
//
// Several threads, reproducibly. The expensive parts run on every thread: building the trees
// (each tree from its own seed, claimed one at a time through a shared counter), the leaf pairs'
// distances and the local join's distances (~95% of the time at 60k points). The rest (the
// candidate sampling, which draws from one random stream) stays on the driving thread. For the
// leaf pairs and the join, the points are cut into contiguous row ranges that the threads claim
// through the same counter; a thread that claimed a range visits EVERY candidate pair in the
// search's fixed order (tree, leaf, pair; or point, pair) and computes the distance of those
// pairs that have an end in its range, and pushes only into its own rows' heaps. A heap's content
// depends only on the sequence of offers made to it, and each row gets the same offers in the
// same order whichever thread owns it and however many ranges there are: so the graph is the
// same bit for bit on one thread or several, whatever the timing, and no thread ever writes a
// row another thread owns (no locks, no update lists, no merge step). The price is that a pair
// whose ends lie in different ranges is computed by both owners: points are numbered in locality
// order (projection/index.ts relabels them before the search), so with two ranges that is ~7-15% of
// the pairs here.
//
// A thread that dies mid-search (its reply is an error, or it exits) costs nothing but time: the
// driving thread redoes whatever tree or range the thread had claimed and not finished, and
// finishes the search alone. (Heap changes the dead thread made in a range it did not finish
// are not counted towards the convergence test.) Redoing a range is harmless: offering a heap the same pairs again
// changes nothing (a pair already in the heap is refused, and one that was pushed out is no
// closer than the heap's current worst).

import { abortable } from './cancel'
import type { KnnGraph, Ticker } from './knn'

/** Small, fast, seedable PRNG (xorshift32). Returns uint32; `float()` in [0, 1). */
export class Rng {
  private s: number
  constructor(seed: number) {
    // splitmix-style scramble so that seeds 0, 1, 2 ... give unrelated streams; never 0.
    let z = (seed + 0x9e3779b9) | 0
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    z ^= z >>> 16
    this.s = z === 0 ? 0x6d2b79f5 : z
  }
  next(): number {
    let x = this.s
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.s = x
    return x >>> 0
  }
  float(): number {
    return this.next() / 4294967296
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return this.next() % n
  }
  gauss(): number {
    let u = this.float()
    if (u < 1e-12) u = 1e-12
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.float())
  }
}

export function sqDist(x: Float32Array, a: number, b: number, dim: number): number {
  const oa = a * dim
  const ob = b * dim
  let s0 = 0
  let s1 = 0
  let d = 0
  for (; d + 3 < dim; d += 4) {
    const t0 = x[oa + d] - x[ob + d]
    const t1 = x[oa + d + 1] - x[ob + d + 1]
    const t2 = x[oa + d + 2] - x[ob + d + 2]
    const t3 = x[oa + d + 3] - x[ob + d + 3]
    s0 += t0 * t0 + t1 * t1
    s1 += t2 * t2 + t3 * t3
  }
  for (; d < dim; d++) {
    const t = x[oa + d] - x[ob + d]
    s0 += t * t
  }
  return s0 + s1
}

// ------------------------------------------------------------------------------------------
// Bounded max-heaps stored row-wise in flat typed arrays (root = the current worst neighbour).

export function heapPush(idx: Int32Array, dist: Float32Array, flag: Uint8Array | null, row: number, k: number, j: number, d: number, isNew: number): number {
  const base = row * k
  if (d >= dist[base]) return 0
  for (let t = 0; t < k; t++) if (idx[base + t] === j) return 0
  // Replace the root and sift down.
  let pos = 0
  for (;;) {
    const l = 2 * pos + 1
    if (l >= k) break
    const r = l + 1
    let c = l
    if (r < k && dist[base + r] > dist[base + l]) c = r
    if (dist[base + c] <= d) break
    idx[base + pos] = idx[base + c]
    dist[base + pos] = dist[base + c]
    if (flag) flag[base + pos] = flag[base + c]
    pos = c
  }
  idx[base + pos] = j
  dist[base + pos] = d
  if (flag) flag[base + pos] = isNew
  return 1
}

/** Sorts each heap row ascending by distance and writes self first, as sqrt distances. */
function heapsToGraph(n: number, kh: number, idx: Int32Array, dist: Float32Array): KnnGraph {
  const k = kh + 1
  const indices = new Int32Array(n * k)
  const distances = new Float32Array(n * k)
  const order = new Int32Array(kh)
  for (let i = 0; i < n; i++) {
    const base = i * kh
    for (let t = 0; t < kh; t++) order[t] = t
    // insertion sort (kh is small)
    for (let a = 1; a < kh; a++) {
      const v = order[a]
      const dv = dist[base + v]
      let b = a - 1
      while (b >= 0 && dist[base + order[b]] > dv) {
        order[b + 1] = order[b]
        b--
      }
      order[b + 1] = v
    }
    indices[i * k] = i
    distances[i * k] = 0
    for (let t = 0; t < kh; t++) {
      const s = base + order[t]
      const j = idx[s]
      // A row can only stay short when n <= k; fill with self at distance 0 then (never in practice).
      indices[i * k + 1 + t] = j < 0 ? i : j
      distances[i * k + 1 + t] = j < 0 ? 0 : Math.sqrt(dist[s])
    }
  }
  return { n, k, indices, distances }
}

// ------------------------------------------------------------------------------------------
// Random projection trees.

/** Leaves of one random projection tree over all points, as [start, end) ranges of `perm`. */
export function rpTreeLeaves(x: Float32Array, n: number, dim: number, leafSize: number, rng: Rng, perm: Int32Array, leaves: number[]): void {
  for (let i = 0; i < n; i++) perm[i] = i
  const hp = new Float64Array(dim)
  const stack: number[] = [0, n]
  while (stack.length > 0) {
    const end = stack.pop() as number
    const start = stack.pop() as number
    const size = end - start
    if (size <= leafSize) {
      leaves.push(start, end)
      continue
    }
    const ia = rng.int(size)
    let ib = rng.int(size - 1)
    if (ib >= ia) ib++
    const a = perm[start + ia]
    const b = perm[start + ib]
    let offset = 0
    let norm = 0
    for (let d = 0; d < dim; d++) {
      const va = x[a * dim + d]
      const vb = x[b * dim + d]
      hp[d] = va - vb
      offset -= (hp[d] * (va + vb)) / 2
      norm += hp[d] * hp[d]
    }
    let lo = start
    let hi = end - 1
    if (norm > 0) {
      // In-place partition: side > 0 goes left.
      while (lo <= hi) {
        const p = perm[lo]
        let s = offset
        for (let d = 0; d < dim; d++) s += hp[d] * x[p * dim + d]
        const left = s > 0 || (s === 0 && (rng.next() & 1) === 0)
        if (left) lo++
        else {
          perm[lo] = perm[hi]
          perm[hi] = p
          hi--
        }
      }
    }
    let mid = lo
    // Degenerate split (duplicates, or all on one side): split the range in half.
    if (mid - start < 1 || end - mid < 1 || norm === 0) mid = start + (size >> 1)
    stack.push(start, mid, mid, end)
  }
}

/** A permutation that puts points of the same random-projection-tree leaf next to each other
 *  (DFS order of one tree). Relabelling points in this order before the neighbour search and
 *  the layout makes their memory accesses local: NN-descent ~30% and the attractive SGD pass
 *  ~40% faster at 60k points here, and the row ranges of a parallel search (see the module
 *  comment) share few candidate pairs. order[newIndex] = oldIndex. */
export function localityOrder(x: Float32Array, n: number, dim: number, seed: number): Int32Array {
  const perm = new Int32Array(n)
  const leaves: number[] = []
  rpTreeLeaves(x, n, dim, 32, new Rng(seed ^ 0x5bd1e995), perm, leaves)
  return perm
}

// ------------------------------------------------------------------------------------------
// The search's state, shared by the threads, and the work items they claim.

/** Most items (trees, or row ranges) a phase can have. */
const MAX_ITEMS = 64
/** control[0]: next item to claim; control[ITEM_STATE + i]: item i's ItemState;
 *  control[ITEM_UPDATES + i]: heap entries changed by item i (join). */
const ITEM_STATE = 1
const ITEM_UPDATES = ITEM_STATE + MAX_ITEMS
const CONTROL_LENGTH = ITEM_UPDATES + MAX_ITEMS

/** What became of an item of the current phase. */
export const ItemState = {
  Free: 0,
  Claimed: 1,
  /** Done by the driving thread. */
  DoneHere: 2,
  /** Done by an extra thread. */
  DoneByHelper: 3
} as const

/** ItemState of item `item` of the phase last run (for tests and diagnostics). */
export function itemState(state: NNDescentState, item: number): number {
  return Atomics.load(state.control, ITEM_STATE + item)
}

/** Everything the threads of one search share: typed arrays over SharedArrayBuffers when there
 *  are extra threads, plain ones otherwise. */
export interface NNDescentState {
  x: Float32Array
  n: number
  dim: number
  /** Neighbours per row, the point itself excluded. */
  kh: number
  maxCand: number
  leafSize: number
  nTrees: number
  /** n * kh heaps: neighbour, squared distance, "new" flag. */
  idx: Int32Array
  dist: Float32Array
  flag: Uint8Array
  /** n * maxCand candidate lists and their (uncapped) counts. */
  newIdx: Int32Array
  newCnt: Int32Array
  oldIdx: Int32Array
  oldCnt: Int32Array
  /** Tree t is built from Rng(treeSeeds[t]) into perms[t*n ..] and leaves[t*2n ..] (start, end
   *  pairs; leafInts[t] of them used). */
  treeSeeds: Int32Array
  perms: Int32Array
  leaves: Int32Array
  leafInts: Int32Array
  /** Row range r of the current phase is [bounds[r], bounds[r + 1]). */
  bounds: Int32Array
  control: Int32Array
}

export type NNDescentPhase = 'trees' | 'forest' | 'join'

/** Items of a phase: trees for 'trees', row ranges otherwise. */
export function phaseItems(state: NNDescentState, phase: NNDescentPhase, ranges: number): number {
  return phase === 'trees' ? state.nTrees : ranges
}

/** Claims the next item of the current phase (shared counter). */
function claim(state: NNDescentState): number {
  return Atomics.add(state.control, 0, 1)
}

/** Runs (part of) one item from `cursor` (0 at the start) until done or until `due()`; returns
 *  -1 when the item is done, else the cursor to resume from. */
export function runItem(state: NNDescentState, phase: NNDescentPhase, item: number, cursor: number, due: () => boolean): number {
  if (phase === 'trees') {
    buildTree(state, item)
    return -1
  }
  const lo = state.bounds[item]
  const hi = state.bounds[item + 1]
  if (phase === 'forest') return forestRange(state, lo, hi, cursor, due)
  const r = joinRange(state, lo, hi, cursor, due)
  Atomics.add(state.control, ITEM_UPDATES + item, r.updates)
  return r.next
}

/** An extra thread's part of a phase: claims items until none are left. */
export function runPhaseItems(state: NNDescentState, phase: NNDescentPhase, ranges: number): void {
  const items = phaseItems(state, phase, ranges)
  for (;;) {
    const item = claim(state)
    if (item >= items) return
    Atomics.store(state.control, ITEM_STATE + item, ItemState.Claimed)
    runItem(state, phase, item, 0, () => false)
    Atomics.store(state.control, ITEM_STATE + item, ItemState.DoneByHelper)
  }
}

function buildTree(state: NNDescentState, t: number): void {
  const { n, x, dim, leafSize } = state
  const leaves: number[] = []
  rpTreeLeaves(x, n, dim, leafSize, new Rng(state.treeSeeds[t]), state.perms.subarray(t * n, (t + 1) * n), leaves)
  state.leaves.set(leaves, t * 2 * n)
  state.leafInts[t] = leaves.length
}

/** Leaf pairs of every tree, in order, offered to the heaps of rows [lo, hi) only. Cursor:
 *  t * 2n + leaf offset. */
function forestRange(state: NNDescentState, lo: number, hi: number, cursor: number, due: () => boolean): number {
  const { n, x, dim, kh, idx, dist, flag, perms, leaves } = state
  const span = hi - lo
  let t = Math.floor(cursor / (2 * n))
  let l = cursor - t * 2 * n
  for (; t < state.nTrees; t++, l = 0) {
    const perm = perms.subarray(t * n, (t + 1) * n)
    const lb = t * 2 * n
    const count = state.leafInts[t]
    for (; l < count; l += 2) {
      if ((l & 255) === 0 && l > 0 && due()) return t * 2 * n + l
      const s = leaves[lb + l]
      const e = leaves[lb + l + 1]
      let touches = false
      for (let a = s; a < e; a++) {
        if ((perm[a] - lo) >>> 0 < span) {
          touches = true
          break
        }
      }
      if (!touches) continue
      for (let a = s; a < e; a++) {
        const p = perm[a]
        const pIn = (p - lo) >>> 0 < span
        for (let b = a + 1; b < e; b++) {
          const q = perm[b]
          const qIn = (q - lo) >>> 0 < span
          if (!pIn && !qIn) continue
          const d = sqDist(x, p, q, dim)
          if (pIn && d < dist[p * kh]) heapPush(idx, dist, flag, p, kh, q, d, 1)
          if (qIn && d < dist[q * kh]) heapPush(idx, dist, flag, q, kh, p, d, 1)
        }
      }
    }
  }
  return -1
}

/** The local join of points [from, n), offered to the heaps of rows [lo, hi) only. */
function joinRange(state: NNDescentState, lo: number, hi: number, from: number, due: () => boolean): { next: number; updates: number } {
  const { n, x, dim, kh, idx, dist, flag, newIdx, newCnt, oldIdx, oldCnt, maxCand } = state
  const span = hi - lo
  let updates = 0
  for (let i = from; i < n; i++) {
    if ((i & 255) === 0 && i > from && due()) return { next: i, updates }
    const cb = i * maxCand
    const cn = Math.min(newCnt[i], maxCand)
    const co = Math.min(oldCnt[i], maxCand)
    if (cn === 0) continue
    let touches = false
    for (let c = 0; c < cn && !touches; c++) touches = (newIdx[cb + c] - lo) >>> 0 < span
    for (let c = 0; c < co && !touches; c++) touches = (oldIdx[cb + c] - lo) >>> 0 < span
    if (!touches) continue
    for (let a = 0; a < cn; a++) {
      const p = newIdx[cb + a]
      const pIn = (p - lo) >>> 0 < span
      const pk = p * kh
      for (let b = a + 1; b < cn; b++) {
        const q = newIdx[cb + b]
        const qIn = (q - lo) >>> 0 < span
        if ((!pIn && !qIn) || q === p) continue
        const d = sqDist(x, p, q, dim)
        if (pIn && d < dist[pk]) updates += heapPush(idx, dist, flag, p, kh, q, d, 1)
        if (qIn && d < dist[q * kh]) updates += heapPush(idx, dist, flag, q, kh, p, d, 1)
      }
      for (let b = 0; b < co; b++) {
        const q = oldIdx[cb + b]
        const qIn = (q - lo) >>> 0 < span
        if ((!pIn && !qIn) || q === p) continue
        const d = sqDist(x, p, q, dim)
        if (pIn && d < dist[pk]) updates += heapPush(idx, dist, flag, p, kh, q, d, 1)
        if (qIn && d < dist[q * kh]) updates += heapPush(idx, dist, flag, q, kh, p, d, 1)
      }
    }
  }
  return { next: -1, updates }
}

// ------------------------------------------------------------------------------------------
// The driving thread.

/** An extra thread that takes part in the search (projection/parallel.ts's LayoutThread). */
export interface NNDescentHelper {
  /** Hands the thread the search's shared state. */
  shareKnn(state: NNDescentState): void
  /** Asks the thread to claim items of `phase` until none are left; resolves when it has, rejects
   *  if the thread fails or dies. */
  runKnnPhase(phase: NNDescentPhase, ranges: number): Promise<void>
  /** Stops the thread (after a failure). */
  close(): Promise<void>
}

export interface NNDescentOptions {
  seed?: number
  nTrees?: number
  leafSize?: number
  maxCandidates?: number
  nIters?: number
  /** Stop when fewer than delta * n * k heap updates happen in an iteration (pynndescent: 0.001). */
  delta?: number
  /** Row ranges the leaf pairs and the join are cut into when extra threads take part (default:
   *  one per thread). The graph does not depend on it (see the module comment). */
  ranges?: number
}

type TickerLike = Pick<Ticker, 'due' | 'yieldNow' | 'throwIfAborted' | 'signal'>

/** Approximate kNN (k includes the point itself, k >= 2, n >= k) by RP-tree init + NN-descent,
 *  on this thread plus `helpers` (each used only while it works; one that fails is closed and its
 *  work redone here). The graph is the same whatever the number of helpers. */
export async function nnDescent(
  x: Float32Array,
  n: number,
  dim: number,
  k: number,
  opts: NNDescentOptions = {},
  ticker?: TickerLike,
  onProgress?: (fraction: number) => void,
  helpers: NNDescentHelper[] = []
): Promise<KnnGraph> {
  const kh = k - 1 // neighbours excluding self
  const rng = new Rng(opts.seed ?? 0)
  const nTrees = Math.min(MAX_ITEMS, opts.nTrees ?? Math.min(8, 3 + Math.round(Math.pow(n, 0.25) / 3)))
  const leafSize = opts.leafSize ?? Math.max(10, Math.round(1.6 * (kh + 1)))
  const maxCand = opts.maxCandidates ?? Math.min(60, kh)
  const nIters = opts.nIters ?? Math.max(5, Math.round(Math.log2(n)))
  const delta = opts.delta ?? 0.001
  let live = helpers.slice()
  const shared = live.length > 0
  const ranges = Math.max(1, Math.min(MAX_ITEMS, Math.floor(opts.ranges ?? 1 + live.length), n))
  const alloc = (bytes: number): ArrayBuffer | SharedArrayBuffer => (shared ? new SharedArrayBuffer(bytes) : new ArrayBuffer(bytes))

  const state: NNDescentState = {
    x: shared ? new Float32Array(alloc(x.length * 4)) : x,
    n,
    dim,
    kh,
    maxCand,
    leafSize,
    nTrees,
    idx: new Int32Array(alloc(n * kh * 4)).fill(-1),
    dist: new Float32Array(alloc(n * kh * 4)).fill(Infinity),
    flag: new Uint8Array(alloc(n * kh)),
    newIdx: new Int32Array(alloc(n * maxCand * 4)),
    newCnt: new Int32Array(alloc(n * 4)),
    oldIdx: new Int32Array(alloc(n * maxCand * 4)),
    oldCnt: new Int32Array(alloc(n * 4)),
    treeSeeds: new Int32Array(alloc(nTrees * 4)),
    perms: new Int32Array(alloc(nTrees * n * 4)),
    leaves: new Int32Array(alloc(nTrees * 2 * n * 4)),
    leafInts: new Int32Array(alloc(nTrees * 4)),
    bounds: new Int32Array(alloc((MAX_ITEMS + 1) * 4)),
    control: new Int32Array(alloc(CONTROL_LENGTH * 4))
  }
  if (shared) state.x.set(x)
  for (let r = 0; r <= ranges; r++) state.bounds[r] = Math.floor((r * n) / ranges)
  for (let t = 0; t < nTrees; t++) state.treeSeeds[t] = rng.next() | 0
  const { idx, dist, flag, newIdx, newCnt, oldIdx, oldCnt, control } = state
  for (const h of live) h.shareKnn(state)
  const due = ticker ? () => ticker.due() : () => false

  /** One phase on this thread and the helpers; a helper that fails is dropped and the items it
   *  left unfinished are done here. */
  const runPhase = async (phase: NNDescentPhase): Promise<void> => {
    const items = phaseItems(state, phase, ranges)
    control.fill(0) // every helper is idle between phases
    // Every live helper is asked, even one still loading: it claims what is left once it is up
    // (a thread's start-up is tens of milliseconds, far less than a phase at sizes that matter).
    const working = live.slice()
    // Resolves, once every working helper is done or dead, to which of them failed.
    const pending =
      working.length > 0
        ? Promise.all(
            working.map((h) =>
              h.runKnnPhase(phase, ranges).then(
                () => false,
                () => true
              )
            )
          )
        : null
    const runHere = async (item: number): Promise<void> => {
      let cursor = 0
      for (;;) {
        cursor = runItem(state, phase, item, cursor, due)
        if (cursor < 0) break
        if (ticker) await ticker.yieldNow()
      }
      Atomics.store(control, ITEM_STATE + item, ItemState.DoneHere)
      if (ticker?.due()) await ticker.yieldNow() // between trees (an item that does not slice)
    }
    for (;;) {
      const item = claim(state)
      if (item >= items) break
      Atomics.store(control, ITEM_STATE + item, ItemState.Claimed)
      await runHere(item)
    }
    if (!pending) return
    const failures = await abortable(pending, ticker?.signal)
    const failed = working.filter((_, i) => failures[i])
    if (failed.length === 0) return
    // A helper failed or died: stop it for good, and redo here what it left unfinished (from
    // scratch: see the module comment for why that is harmless). The others have finished every
    // item they claimed.
    live = live.filter((h) => !failed.includes(h))
    await Promise.all(failed.map((h) => h.close().catch(() => {})))
    for (let item = 0; item < items; item++) {
      if (Atomics.load(control, ITEM_STATE + item) >= ItemState.DoneHere) continue
      control[ITEM_UPDATES + item] = 0
      await runHere(item)
    }
  }

  // 1. RP-tree forest: every pair inside a leaf is a candidate.
  const rowWork = new Float64Array(ranges > 1 ? n : 0)
  await runPhase('trees')
  onProgress?.(0.15)
  if (ranges > 1) {
    // a row's share of the leaf pairs: the other points of its leaves
    rowWork.fill(0)
    for (let t = 0; t < nTrees; t++) {
      const perm = state.perms.subarray(t * n, (t + 1) * n)
      for (let l = 0; l < state.leafInts[t]; l += 2) {
        const s = state.leaves[t * 2 * n + l]
        const e = state.leaves[t * 2 * n + l + 1]
        for (let a = s; a < e; a++) rowWork[perm[a]] += e - s - 1
      }
    }
    splitRows(rowWork, ranges, state.bounds)
  }
  await runPhase('forest')
  // Fill rows that are still short with random points.
  for (let i = 0; i < n; i++) {
    let tries = 0
    while (idx[i * kh] < 0 && tries < 4 * kh) {
      const j = rng.int(n)
      tries++
      if (j !== i) heapPush(idx, dist, flag, i, kh, j, sqDist(x, i, j, dim), 1)
    }
  }
  onProgress?.(0.3)

  // 2. NN-descent. Candidate lists are uniform samples (reservoir sampling, O(1) per offer) of
  //    the forward and reverse neighbours, split into "new" (not yet joined) and "old".
  const newSlot = new Int32Array(n * maxCand)
  for (let iter = 0; iter < nIters; iter++) {
    newCnt.fill(0)
    oldCnt.fill(0)
    for (let i = 0; i < n; i++) {
      const base = i * kh
      for (let t = 0; t < kh; t++) {
        const j = idx[base + t]
        if (j < 0) continue
        if (flag[base + t]) {
          // forward: i's new candidate j (remember the heap slot, to clear its flag)
          let c = newCnt[i]++
          if (c >= maxCand) c = rng.int(c + 1)
          if (c < maxCand) {
            newIdx[i * maxCand + c] = j
            newSlot[i * maxCand + c] = t
          }
          // reverse: j's new candidate i
          c = newCnt[j]++
          if (c >= maxCand) c = rng.int(c + 1)
          if (c < maxCand) {
            newIdx[j * maxCand + c] = i
            newSlot[j * maxCand + c] = -1
          }
        } else {
          let c = oldCnt[i]++
          if (c >= maxCand) c = rng.int(c + 1)
          if (c < maxCand) oldIdx[i * maxCand + c] = j
          c = oldCnt[j]++
          if (c >= maxCand) c = rng.int(c + 1)
          if (c < maxCand) oldIdx[j * maxCand + c] = i
        }
      }
    }
    // Forward entries that made it into the new candidates are no longer new.
    for (let i = 0; i < n; i++) {
      const cb = i * maxCand
      const cn = Math.min(newCnt[i], maxCand)
      for (let c = 0; c < cn; c++) {
        const t = newSlot[cb + c]
        if (t >= 0) flag[i * kh + t] = 0
      }
    }
    if (ranges > 1) {
      // a row's share of the join: the pairs it is an end of
      rowWork.fill(0)
      for (let i = 0; i < n; i++) {
        const cb = i * maxCand
        const cn = Math.min(newCnt[i], maxCand)
        const co = Math.min(oldCnt[i], maxCand)
        if (cn === 0) continue
        for (let c = 0; c < cn; c++) rowWork[newIdx[cb + c]] += cn - 1 + co
        for (let c = 0; c < co; c++) rowWork[oldIdx[cb + c]] += cn
      }
      splitRows(rowWork, ranges, state.bounds)
    }
    if (ticker) await ticker.yieldNow()
    // Local join: every new-new and new-old pair among i's candidates is a candidate edge.
    await runPhase('join')
    let updates = 0
    for (let r = 0; r < ranges; r++) updates += control[ITEM_UPDATES + r]
    onProgress?.(0.3 + (0.7 * (iter + 1)) / nIters)
    if (updates <= delta * kh * n) break
  }
  onProgress?.(1)
  return heapsToGraph(n, kh, idx, dist)
}

/** Cuts rows 0..n-1 into `ranges` contiguous ranges of about equal total `work`. Any cut gives
 *  the same graph; an even one keeps the threads from waiting for each other. */
function splitRows(work: Float64Array, ranges: number, bounds: Int32Array): void {
  const n = work.length
  let total = 0
  for (let i = 0; i < n; i++) total += work[i]
  bounds[0] = 0
  let acc = 0
  let r = 1
  for (let i = 0; i < n && r < ranges; i++) {
    acc += work[i]
    while (r < ranges && acc >= (total * r) / ranges) bounds[r++] = i + 1
  }
  while (r < ranges) bounds[r++] = n
  bounds[ranges] = n
}
