// The UMAP layout on several threads: umap-learn's `parallel=True` mode (Hogwild SGD).
//
// The layout's edges are cut into contiguous pieces of equal work (splitLayoutEdges), one per
// thread: the thread running LatentProjection.fit keeps the first, each extra thread
// (projection-layout-worker.ts) gets one of the others. The embedding lives in a
// SharedArrayBuffer that all of them update in place, without locks, each with its own
// LayoutOptimizer (the same per-edge update, learning-rate schedule and sampling bookkeeping as
// the one-thread layout) and its own negative-sampling stream derived from the seed. The threads
// meet after every epoch (the learning rate and the sampling schedule go by epoch), and the
// driving thread yields to its event loop while it works, so progress frames, which read the
// shared embedding, and cancellation work as they do on one thread.
//
// Two threads may update the same point at the same moment, and then one update can be lost or
// mixed with the other. Hogwild accepts this, as umap-learn's numba loop does: such collisions
// are rare (pieces of the head-sorted edge list over points in locality order touch mostly
// different points; only edges between pieces and the random negative samples are shared) and
// each step is small. The consequence: a parallel layout is NOT reproducible bit for bit from
// the seed (the threads' interleaving changes the result slightly); the one-thread layout
// (layoutThreads: 1) is, and it is used wherever no worker thread can be started.
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { availableParallelism } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { Rng, abortError, type Ticker } from './projection-knn'
import type { LayoutReply, LayoutRequest } from './projection-layout-worker'
import { LayoutOptimizer, splitLayoutEdges, type LayoutEdges, type LayoutParams } from './projection-umap'

/** Below this much work (points x epochs, ~3 us each here: about a second) the layout stays on
 *  one thread, where a second one would save little and cost its start-up. */
export const PARALLEL_LAYOUT_MIN_WORK = 300_000

/** Layout threads when the caller does not say: two where there are two cores and enough work.
 *  Not more by default: the neighbour search before the layout is single-threaded anyway, and
 *  the engine may be training on other threads at the same time. */
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
  const outMain = basename(here) === 'chunks' ? dirname(here) : here
  for (const path of [join(outMain, 'projection-layout-worker.js'), join(here, 'projection-layout-worker.mjs')]) {
    if (existsSync(path)) return new Worker(path)
  }
  const source = join(here, 'projection-layout-worker.ts')
  if (!existsSync(source)) throw new Error(`no projection layout worker beside ${here}`)
  const tsx = createRequire(join(here, 'index.js')).resolve('tsx/cjs')
  return new Worker(`require(${JSON.stringify(tsx)}); require(${JSON.stringify(source)})`, { eval: true })
}

/** One extra layout thread; requests are answered in order, one outstanding at a time. */
export class LayoutThread {
  private failure: Error | null = null
  private ready = false
  private waiter: { type: LayoutReply['type']; resolve(): void; reject(error: Error): void } | null = null
  private readonly exited: Promise<void>

  private constructor(private readonly worker: Worker) {
    liveWorkers++
    this.exited = new Promise((resolve) =>
      worker.once('exit', () => {
        liveWorkers--
        resolve()
      })
    )
    worker.on('message', (reply: LayoutReply) => {
      if (reply.type === 'error') return this.fail(new Error(`layout worker: ${reply.message}`))
      if (reply.type === 'ready') this.ready = true
      const waiter = this.waiter
      if (waiter?.type === reply.type) {
        this.waiter = null
        waiter.resolve()
      }
    })
    worker.on('error', (error) => this.fail(error))
    worker.on('exit', (code) => this.fail(new Error(`the layout worker stopped (exit code ${code})`)))
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
    return this.wait('ready').then(
      () => true,
      () => false
    )
  }

  start(embedding: Float32Array, dim: number, edges: LayoutEdges, params: LayoutParams): void {
    // Copies of the edge arrays (a view would send its whole buffer); the embedding is shared.
    const head = new Int32Array(edges.head)
    const tail = new Int32Array(edges.tail)
    const epochsPerSample = new Float64Array(edges.epochsPerSample)
    const request: LayoutRequest = { type: 'start', embedding, dim, edges: { head, tail, epochsPerSample }, params }
    this.worker.postMessage(request, [head.buffer, tail.buffer, epochsPerSample.buffer])
  }

  runEpoch(epoch: number, seed: number): Promise<void> {
    const done = this.wait('epoch-done')
    if (!this.failure) this.worker.postMessage({ type: 'epoch', epoch, seed } satisfies LayoutRequest)
    return done
  }

  /** Stops the worker; resolves once it has exited. */
  async close(): Promise<void> {
    this.fail(new Error('the layout worker was closed'))
    await this.worker.terminate()
    await this.exited
  }

  private wait(type: LayoutReply['type']): Promise<void> {
    if (this.failure) return Promise.reject(this.failure)
    if (type === 'ready' && this.ready) return Promise.resolve()
    return new Promise((resolve, reject) => {
      this.waiter = { type, resolve, reject }
    })
  }

  private fail(error: Error): void {
    this.failure ??= error
    const waiter = this.waiter
    this.waiter = null
    waiter?.reject(this.failure)
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

/** The SGD layout on this thread plus the given extra threads (none: the plain, reproducible
 *  one-thread LayoutOptimizer). Drive it with runSlice until done. */
export class Layout {
  private pending: Promise<unknown> | null = null

  private constructor(
    /** The embedding being optimised (shared memory when there are extra threads). */
    readonly embedding: Float32Array,
    private readonly own: LayoutOptimizer,
    private readonly helpers: LayoutThread[],
    private readonly helperSeeds: Rng[],
    readonly nEdges: number,
    private readonly signal?: AbortSignal
  ) {}

  /** Waits for `threads` to load (those that fail are left out), splits the edges between them
   *  and this thread and starts them. `embedding` is copied into shared memory when threads take
   *  part; read the result from `layout.embedding`. */
  static async create(
    edges: LayoutEdges,
    embedding: Float32Array,
    dim: number,
    params: LayoutParams,
    rng: Rng,
    threads: LayoutThread[],
    signal?: AbortSignal
  ): Promise<Layout> {
    const nEdges = edges.head.length
    const ready = await abortable(Promise.all(threads.map((t) => t.whenReady())), signal)
    const helpers = threads.filter((_, i) => ready[i])
    if (helpers.length === 0) return new Layout(embedding, new LayoutOptimizer(edges, embedding, dim, params, rng), [], [], nEdges, signal)
    const shared = new Float32Array(new SharedArrayBuffer(embedding.byteLength))
    shared.set(embedding)
    const pieces = splitLayoutEdges(edges, helpers.length + 1, params.negativeSampleRate)
    const base = rng.next()
    const helperSeeds = helpers.map((_, i) => new Rng((base + i + 1) | 0))
    helpers.forEach((h, i) => h.start(shared, dim, pieces[i + 1], params))
    return new Layout(shared, new LayoutOptimizer(pieces[0], shared, dim, params, rng), helpers, helperSeeds, nEdges, signal)
  }

  /** Threads taking part, this one included. */
  get threads(): number {
    return 1 + this.helpers.length
  }

  /** Epochs completed by every thread. */
  get epoch(): number {
    return this.own.epoch
  }

  get done(): boolean {
    return this.own.done
  }

  /** Works until the ticker says to yield or, with extra threads, until this thread's piece of
   *  the epoch is done and the others have finished theirs. */
  async runSlice(ticker: Ticker): Promise<void> {
    const own = this.own
    if (this.helpers.length === 0) {
      own.runSlice(ticker)
      return
    }
    if (own.done) return
    if (own.atEpochStart && !this.pending) {
      const epoch = own.epoch
      const all = Promise.all(this.helpers.map((h, i) => h.runEpoch(epoch, this.helperSeeds[i].next())))
      all.catch(() => {}) // awaited below; this keeps an early failure from counting as unhandled
      this.pending = all
    }
    own.runSlice(ticker, 65536, true)
    if (own.atEpochStart && this.pending) {
      const all = this.pending
      this.pending = null
      await abortable(all, this.signal)
    }
  }
}

/** `promise`, or a rejection as soon as `signal` aborts (with the reason Ticker would throw). */
function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => {
      const reason: unknown = signal.reason
      reject(reason instanceof Error ? reason : abortError())
    }
    if (signal.aborted) return onAbort()
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      }
    )
  })
}
