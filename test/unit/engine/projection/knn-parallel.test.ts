// The neighbour search on several threads (projection/nndescent.ts): the layout threads of
// projection/parallel.ts take part in it. vitest runs the TypeScript sources, so the extra
// thread is projection/layout-worker.ts through tsx's require hook.
import { Worker } from 'node:worker_threads'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import * as tf from '@tensorflow/tfjs'
import '@tensorflow/tfjs-backend-wasm'
import { LatentProjection, trustworthiness, type ProjectionProgress } from '../../../../electron/engine/projection/index'
import { Rng, Ticker, bruteForceKnn, nnDescentKnn, type KnnGraph } from '../../../../electron/engine/projection/knn'
import { knnRecall } from './knn-recall'
import { ItemState, itemState, type NNDescentHelper, type NNDescentPhase, type NNDescentState } from '../../../../electron/engine/projection/nndescent'
import { LayoutThread, closeLayoutThreads, liveLayoutWorkers } from '../../../../electron/engine/projection/parallel'

/** `clusters` overlapping Gaussian blobs in `dim` dimensions, `per` points each, numbered in a
 *  scrambled order (as a caller's data would be; fit relabels in locality order itself). */
function blobs(clusters: number, per: number, dim: number, seed: number) {
  const r = new Rng(seed)
  const centres = new Float32Array(clusters * dim).map(() => r.gauss() * 2.5)
  const n = clusters * per
  const x = new Float32Array(n * dim)
  for (let i = 0; i < n; i++) {
    const c = r.int(clusters)
    for (let d = 0; d < dim; d++) x[i * dim + d] = centres[c * dim + d] + r.gauss()
  }
  return { x, n }
}

function sameGraph(a: KnnGraph, b: KnnGraph): void {
  expect(a.n).toBe(b.n)
  expect(a.k).toBe(b.k)
  // whole-array comparisons first (fast); toEqual on 60k-element arrays is slow
  expect(Buffer.from(a.indices.buffer).equals(Buffer.from(b.indices.buffer))).toBe(true)
  expect(Buffer.from(a.distances.buffer).equals(Buffer.from(b.distances.buffer))).toBe(true)
}

/** Wraps a LayoutThread and records, after each phase, how many items the thread itself did. */
class Watched implements NNDescentHelper {
  state: NNDescentState | null = null
  phases: NNDescentPhase[] = []
  itemsDone = 0
  constructor(readonly thread: LayoutThread) {}
  shareKnn(state: NNDescentState): void {
    this.state = state
    this.thread.shareKnn(state)
  }
  async runKnnPhase(phase: NNDescentPhase, ranges: number): Promise<void> {
    await this.thread.runKnnPhase(phase, ranges)
    this.phases.push(phase)
    const items = phase === 'trees' ? this.state!.nTrees : ranges
    for (let i = 0; i < items; i++) if (itemState(this.state!, i) === ItemState.DoneByHelper) this.itemsDone++
  }
  close(): Promise<void> {
    return this.thread.close()
  }
}

beforeAll(async () => {
  await tf.setBackend('wasm')
  await tf.ready()
})

describe('NN-descent on two threads', () => {
  const dim = 16
  const k = 15
  const data = blobs(12, 400, dim, 31) // 4800 points
  let exact: KnnGraph
  let single: KnnGraph
  let thread: LayoutThread

  beforeAll(async () => {
    exact = bruteForceKnn(data.x, data.n, dim, k)
    single = await nnDescentKnn(data.x, data.n, dim, k, { seed: 2 })
    const t = LayoutThread.spawn()
    if (!t) throw new Error('no layout worker thread could be started')
    thread = t
    expect(await thread.whenReady()).toBe(true)
  })

  afterAll(async () => {
    await closeLayoutThreads([thread])
  })

  it('gives the one-thread graph bit for bit, run after run, with the helper doing part of the work', async () => {
    const watched = new Watched(thread)
    const first = await nnDescentKnn(data.x, data.n, dim, k, { seed: 2 }, undefined, undefined, [watched])
    const second = await nnDescentKnn(data.x, data.n, dim, k, { seed: 2 }, undefined, undefined, [watched])
    sameGraph(first, single)
    sameGraph(second, single)
    // it took part in every phase (trees, forest, then the joins), twice over, and did some of it
    expect(watched.phases.slice(0, 3)).toEqual(['trees', 'forest', 'join'])
    expect(watched.phases.filter((p) => p === 'trees').length).toBe(2)
    expect(watched.itemsDone).toBeGreaterThan(0)
    // and it is still a working layout thread
    expect(thread.loaded).toBe(true)
  })

  it('finds the true neighbours as well as on one thread', async () => {
    const parallel = await nnDescentKnn(data.x, data.n, dim, k, { seed: 2 }, undefined, undefined, [thread])
    const r1 = knnRecall(single, exact)
    const r2 = knnRecall(parallel, exact)
    expect(r1).toBeGreaterThan(0.95)
    expect(r2).toBeGreaterThanOrEqual(r1 - 0.005)
    for (let i = 0; i < data.n; i++) expect(parallel.indices[i * k]).toBe(i)
  })

  it('gives the same graph however the rows are cut into ranges', async () => {
    const three = await nnDescentKnn(data.x, data.n, dim, k, { seed: 2, ranges: 3 }, undefined, undefined, [thread])
    const fiveHere = await nnDescentKnn(data.x, data.n, dim, k, { seed: 2, ranges: 5 })
    sameGraph(three, single)
    sameGraph(fiveHere, single)
    // another seed is another graph (the trees differ), about as good
    const other = await nnDescentKnn(data.x, data.n, dim, k, { seed: 3 }, undefined, undefined, [thread])
    expect(Buffer.from(other.indices.buffer).equals(Buffer.from(single.indices.buffer))).toBe(false)
    expect(knnRecall(other, exact)).toBeGreaterThan(knnRecall(single, exact) - 0.01)
  })

  it('copes with sets barely larger than k, with duplicates', async () => {
    for (const m of [15, 16, 40]) {
      const x = data.x.slice(0, m * dim)
      x.set(x.subarray(0, dim), dim) // point 1 duplicates point 0
      const here = await nnDescentKnn(x, m, dim, k, { seed: 1 })
      const both = await nnDescentKnn(x, m, dim, k, { seed: 1 }, undefined, undefined, [thread])
      sameGraph(both, here)
      expect(knnRecall(both, bruteForceKnn(x, m, dim, k))).toBeGreaterThan(0.9)
    }
  })

  it('completes the graph on this thread when the helper dies mid-search', async () => {
    // A worker that speaks the protocol (workers/channel.ts's envelopes): it sits out the forest, then claims a row range of the
    // first join and exits without doing it.
    const dying = new Worker(
      "const { parentPort } = require('node:worker_threads');" +
        'let state = null;' +
        "parentPort.on('message', ({ id, body: m }) => {" +
        "  if (m.type === 'knn-start') { state = m.state; return }" +
        "  if (m.type !== 'knn') return;" +
        "  if (m.phase !== 'join') { parentPort.postMessage({ id, ok: true, body: { type: 'knn-done', phase: m.phase } }); return }" +
        '  const item = Atomics.add(state.control, 0, 1);' +
        '  Atomics.store(state.control, 1 + item, 1);' +
        '  process.exit(3)' +
        '});' +
        "parentPort.postMessage({ id: 0, ok: true, body: { type: 'ready' } })",
      { eval: true }
    )
    const helper = LayoutThread.fromWorker(dying)
    expect(await helper.whenReady()).toBe(true)
    const watched = new Watched(helper)
    const graph = await nnDescentKnn(data.x, data.n, dim, k, { seed: 2 }, undefined, undefined, [watched])
    sameGraph(graph, single)
    // it took part until it died, and was not asked again
    expect(watched.phases).toEqual(['trees', 'forest'])
    expect(helper.loaded).toBe(false)
    expect(liveLayoutWorkers()).toBe(1) // `thread` only: the dead one was closed
  })

  it('cancels through the ticker while the helper works, and the helper stays usable', async () => {
    const controller = new AbortController()
    const fractions: number[] = []
    const run = nnDescentKnn(
      data.x,
      data.n,
      dim,
      k,
      { seed: 2 },
      new Ticker(controller.signal, 1),
      (f) => {
        fractions.push(f)
        if (f >= 0.3) controller.abort()
      },
      [thread]
    )
    await expect(run).rejects.toThrow(/abort|cancel/i)
    expect(fractions.length).toBeGreaterThanOrEqual(2)
    expect(Math.max(...fractions)).toBeLessThan(1)
    // the thread finishes the phase it was in and then answers the next search as usual
    const after = await nnDescentKnn(data.x, data.n, dim, k, { seed: 2 }, undefined, undefined, [thread])
    sameGraph(after, single)
  })
})

describe('LatentProjection.fit with the approximate search on two threads', () => {
  const dim = 16
  const data = blobs(8, 300, dim, 5)

  it('maps as well as with the search on one thread', async () => {
    const one = await LatentProjection.fit(data.x, dim, { seed: 1, knn: 'approximate', layoutThreads: 1, nEpochs: 100 })
    const two = await LatentProjection.fit(data.x, dim, { seed: 1, knn: 'approximate', layoutThreads: 2, nEpochs: 100 })
    expect(one.stats?.knnMethod).toBe('nn-descent')
    expect(two.stats?.knnMethod).toBe('nn-descent')
    expect(two.stats?.layoutThreads).toBe(2)
    const tw1 = trustworthiness(data.x, dim, one.embedding, 3, 15, 600)
    const tw2 = trustworthiness(data.x, dim, two.embedding, 3, 15, 600)
    expect(tw1).toBeGreaterThan(0.85)
    expect(tw2).toBeGreaterThan(tw1 - 0.02)
    expect(liveLayoutWorkers()).toBe(0)
  })

  it('cancels mid-search, and the worker exits', async () => {
    const controller = new AbortController()
    let neighbourEvents = 0
    let workers = 0
    const run = LatentProjection.fit(
      data.x,
      dim,
      { seed: 1, knn: 'approximate', layoutThreads: 2, nEpochs: 20 },
      (p: ProjectionProgress) => {
        if (p.phase !== 'neighbors') return
        workers = Math.max(workers, liveLayoutWorkers())
        neighbourEvents++
        controller.abort()
      },
      controller.signal
    )
    await expect(run).rejects.toThrow(/abort|cancel/i)
    expect(neighbourEvents).toBe(1)
    expect(workers).toBe(1)
    expect(liveLayoutWorkers()).toBe(0)
  })
})
