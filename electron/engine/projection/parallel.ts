// The UMAP layout on several threads: umap-learn's `parallel=True` mode (Hogwild SGD).
//
// The embedding and the layout's sampling schedule (edges, epochs per sample, epoch of next
// (negative) sample) live in SharedArrayBuffers. Every epoch, the thread running
// LatentProjection.fit and each extra thread (projection/layout-worker.ts) claim chunks of the
// epoch's edges through shared atomic counters and run the same per-edge update on them as the
// one-thread layout (LayoutOptimizer: attraction, negative-sampling repulsion, learning-rate
// schedule, sampling bookkeeping), each with its own negative-sampling stream derived from the
// seed. Every edge is processed once per epoch, by whichever thread claimed it: a thread that
// gets less CPU (the engine may be training beside it, the machine may be shared) just claims
// fewer chunks, so an epoch never waits long for it. The driving thread claims from the front of
// the edge list and the others from the back: edges are sorted by head point and points are
// numbered in locality order, so the two ends work on different parts of the map until they
// meet. The threads meet after every epoch (the learning rate goes by epoch); the driving thread
// yields to its event loop between chunks as before, so progress frames (which read the shared
// embedding) and cancellation work as on one thread.
//
// One deliberate difference from the one-thread update: each thread reads its negative samples'
// coordinates (random points, only ever read) from its own copy of the embedding, taken at the
// start of each epoch. Read from the shared embedding, most of them were cache lines the other
// core had just written; at 60k points that made each thread ~50% slower (2 threads: 6.0 s and
// 12 CPU s, against 8.1 s on one). With the copies 2 threads take ~4.6 s and the CPU time of
// one, and the maps score the same (5-NN accuracy, trustworthiness).
//
// The threads update shared coordinates without locks. Two may update the same point at the same
// moment, and then one update can be lost or mixed with the other. Hogwild accepts this, as
// umap-learn's numba loop does: such collisions are rare (a point gets a few dozen of an epoch's
// millions of updates, and the threads mostly work on different points) and each step is small.
// The consequence: a parallel layout is NOT reproducible bit for bit from the seed (which thread
// claims which chunk, and how their writes interleave, vary from run to run). The one-thread
// layout (layoutThreads: 1) is, and it is what runs wherever no worker thread can be started.
//
// The same threads run the neighbour search before the layout (LatentProjection.fit starts them
// before it, and they would sit idle otherwise): LayoutThread is also the NNDescentHelper of
// projection/nndescent.ts, whose module comment explains that scheme. Unlike the layout, the
// search IS reproducible: each heap row is written by one thread only, and gets the same offers
// in the same order on any number of threads, so the graph is the same bit for bit as on one.
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { availableParallelism } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { abortable } from './cancel'
import { Rng, type Ticker } from './knn'
import type { LayoutReply, LayoutRequest } from './layout-worker'
import { WorkerChannel } from '../workers/channel'
import type { NNDescentHelper, NNDescentPhase, NNDescentState } from './nndescent'
import { LayoutOptimizer, layoutSchedule, type LayoutEdges, type LayoutParams, type LayoutSchedule } from './umap'
import { builtWorkerPath } from '../worker-path'

/** Below this much work (points x epochs, ~3 us each here: about a second) the layout stays on
 *  one thread, where a second one would save little and cost its start-up. */
export const PARALLEL_LAYOUT_MIN_WORK = 300_000

/** Layout threads when the caller does not say: two where there are two cores and enough work.
 *  Not more by default: the engine may be training on other threads at the same time. */
export function defaultLayoutThreads(n: number, nEpochs: number): number {
  if (n * nEpochs < PARALLEL_LAYOUT_MIN_WORK) return 1
  return Math.max(1, Math.min(2, availableParallelism()))
}

let liveWorkers = 0

/** Layout worker threads started and not yet exited (for tests and diagnostics). */
export function liveLayoutWorkers(): number {
  return liveWorkers
}

function moduleDir(): string {
  return typeof __dirname === 'string' ? __dirname : dirname(fileURLToPath(import.meta.url))
}

/** The built worker (out/main/projection-layout-worker.js, beside this bundle or its chunks/
 *  folder), else a transpiled copy beside this module (bench/projection.mjs makes .mjs ones),
 *  else the TypeScript source through tsx's require hook (vitest and tsx runs of the sources). */
function spawnLayoutWorker(): Worker {
  const here = moduleDir()
  const built = builtWorkerPath('projection-layout-worker', here)
  if (built) return new Worker(built)
  const transpiled = join(here, 'layout-worker.mjs')
  if (existsSync(transpiled)) return new Worker(transpiled)
  const source = join(here, 'layout-worker.ts')
  if (!existsSync(source)) throw new Error(`no projection layout worker beside ${here}`)
  const tsx = createRequire(join(here, 'index.js')).resolve('tsx/cjs')
  return new Worker(`require(${JSON.stringify(tsx)}); require(${JSON.stringify(source)})`, { eval: true })
}

/** One extra layout thread, its requests and replies matched by id (workers/channel.ts). It also
 *  serves the neighbour search before the layout (NNDescentHelper). */
export class LayoutThread implements NNDescentHelper {
  private readonly channel: WorkerChannel<LayoutRequest, LayoutReply>
  private readonly loading: Promise<boolean>
  private ready = false

  private constructor(worker: Worker) {
    liveWorkers++
    let settleLoading: (loaded: boolean) => void = () => undefined
    this.loading = new Promise((resolve) => (settleLoading = resolve))
    this.channel = new WorkerChannel<LayoutRequest, LayoutReply>(worker, 'layout worker', {
      onNotice: (notice) => {
        if (notice.type !== 'ready') return
        this.ready = true
        settleLoading(true)
      },
      onFailure: () => settleLoading(false)
    })
    void this.channel.whenExited.then(() => liveWorkers--)
  }

  /** Wraps a worker that speaks the layout protocol (projection/layout-worker.ts, or a test's). */
  static fromWorker(worker: Worker): LayoutThread {
    return new LayoutThread(worker)
  }

  /** Starts a worker thread (it loads while the caller does other work); null where none can be made. */
  static spawn(): LayoutThread | null {
    try {
      return new LayoutThread(spawnLayoutWorker())
    } catch {
      return null
    }
  }

  /** True once the worker has loaded, false if it failed to. */
  whenReady(): Promise<boolean> {
    return this.loading
  }

  /** True once the worker has loaded (and has not failed since). */
  get loaded(): boolean {
    return this.ready && this.channel.alive
  }

  /** `state`'s arrays are shared memory, which the worker uses in place. */
  shareKnn(state: NNDescentState): void {
    this.channel.post({ type: 'knn-start', state })
  }

  async runKnnPhase(phase: NNDescentPhase, ranges: number): Promise<void> {
    await this.channel.request({ type: 'knn', phase, ranges })
  }

  /** Everything but `params` is shared memory, which the worker uses in place. */
  start(embedding: Float32Array, dim: number, schedule: LayoutSchedule, params: LayoutParams, claims: Int32Array, chunkEdges: number): void {
    this.channel.post({ type: 'start', embedding, dim, schedule, params, claims, chunkEdges })
  }

  async runEpoch(epoch: number, seed: number): Promise<void> {
    await this.channel.request({ type: 'epoch', epoch, seed })
  }

  /** Stops the worker; resolves once it has exited. */
  async close(): Promise<void> {
    this.channel.fail(new Error('the layout worker was closed'))
    await this.channel.terminate()
  }
}

/** Starts `count` extra layout threads, as many as can be made. */
export function spawnLayoutThreads(count: number): LayoutThread[] {
  const threads: LayoutThread[] = []
  for (let i = 0; i < count; i++) {
    const t = LayoutThread.spawn()
    if (!t) break
    threads.push(t)
  }
  return threads
}

export async function closeLayoutThreads(threads: LayoutThread[]): Promise<void> {
  await Promise.all(threads.map((t) => t.close()))
}

/** Edges per claim: small enough that the threads finish an epoch within a chunk of each other
 *  and the driving thread yields often, big enough that claiming costs nothing (~2 ms at most). */
function chunkEdgesFor(nEdges: number): number {
  return Math.min(16384, Math.max(1024, Math.ceil(nEdges / 64)))
}

/** The SGD layout on this thread plus the given extra threads (none: the plain, reproducible
 *  one-thread LayoutOptimizer). Drive it with runSlice until done. */
export class Layout {
  private parallelEpoch = 0
  private pending: Promise<unknown> | null = null

  private constructor(
    /** The embedding being optimised (shared memory when there are extra threads). */
    readonly embedding: Float32Array,
    private readonly own: LayoutOptimizer,
    private helpers: LayoutThread[],
    private readonly helperSeeds: Rng[],
    private readonly claims: Int32Array,
    private readonly chunkEdges: number,
    private readonly signal?: AbortSignal
  ) {}

  /** Waits for `threads` to load (those that fail are left out) and starts them. With threads
   *  taking part, `embedding` is copied into shared memory: read the result from
   *  `layout.embedding`. */
  static async create(
    edges: LayoutEdges,
    embedding: Float32Array,
    dim: number,
    params: LayoutParams,
    rng: Rng,
    threads: LayoutThread[],
    signal?: AbortSignal
  ): Promise<Layout> {
    const ready = await abortable(Promise.all(threads.map((t) => t.whenReady())), signal)
    const helpers = threads.filter((_, i) => ready[i])
    if (helpers.length === 0) {
      return new Layout(embedding, new LayoutOptimizer(edges, embedding, dim, params, rng), [], [], new Int32Array(3), 0, signal)
    }
    const shared = new Float32Array(new SharedArrayBuffer(embedding.byteLength))
    shared.set(embedding)
    const schedule = layoutSchedule(edges, params.negativeSampleRate, true)
    const claims = new Int32Array(new SharedArrayBuffer(3 * 4))
    const chunkEdges = chunkEdgesFor(schedule.head.length)
    const base = rng.next()
    const helperSeeds = helpers.map((_, i) => new Rng((base + i + 1) | 0))
    for (const h of helpers) h.start(shared, dim, schedule, params, claims, chunkEdges)
    const own = new LayoutOptimizer(schedule, shared, dim, params, rng)
    own.privateNegativeSamples()
    return new Layout(shared, own, helpers, helperSeeds, claims, chunkEdges, signal)
  }

  /** Threads taking part, this one included. */
  get threads(): number {
    return 1 + this.helpers.length
  }

  get nEdges(): number {
    return this.own.nEdges
  }

  /** Epochs completed (by every thread). */
  get epoch(): number {
    return this.helpers.length === 0 ? this.own.epoch : this.parallelEpoch
  }

  get done(): boolean {
    return this.epoch >= this.own.params.nEpochs
  }

  /** Works until the ticker says to yield or, with extra threads, until the current epoch is
   *  done by all of them. */
  async runSlice(ticker: Ticker): Promise<void> {
    if (this.helpers.length === 0) {
      this.own.runSlice(ticker)
      return
    }
    if (this.done) return
    const epoch = this.parallelEpoch
    if (!this.pending) {
      this.claims.fill(0) // the other threads are between epochs: nobody is claiming
      const all = Promise.all(this.helpers.map((h, i) => h.runEpoch(epoch, this.helperSeeds[i].next())))
      all.catch(() => {}) // awaited below; this keeps an early failure from counting as unhandled
      this.pending = all
      this.own.beginEpoch()
    }
    if (!this.own.runClaimed(epoch, this.claims, this.chunkEdges, false, () => ticker.due())) return
    // Every chunk is claimed: wait for the other threads to finish theirs.
    const all = this.pending
    this.pending = null
    try {
      await abortable(all, this.signal)
    } catch (error) {
      if (this.signal?.aborted) throw error
      // A layout thread died mid-layout: the map need not fail with it. The chunks it had claimed
      // but not finished this epoch are lost (Hogwild shrugs that off); the remaining epochs run
      // on this thread alone.
      const failed = this.helpers
      this.helpers = []
      await closeLayoutThreads(failed).catch(() => {})
      this.own.epoch = this.parallelEpoch + 1
      return
    }
    this.parallelEpoch++
  }
}
