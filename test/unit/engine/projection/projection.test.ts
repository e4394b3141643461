import { Worker } from 'node:worker_threads'
import { beforeAll, describe, expect, it } from 'vitest'
import * as tf from '@tensorflow/tfjs'
import '@tensorflow/tfjs-backend-wasm'
import { LatentProjection, knnClassAccuracy, trustworthiness, type ProjectionProgress } from '../../../../electron/engine/projection/index'
import { Rng, Ticker, bruteForceKnn, exactKnnTf, nnDescentKnn } from '../../../../electron/engine/projection/knn'
import { knnRecall } from './knn-recall'
import { Layout, LayoutThread, liveLayoutWorkers } from '../../../../electron/engine/projection/parallel'
import { LayoutOptimizer, findABParams, fuzzySimplicialSet, layoutEdges, layoutSchedule } from '../../../../electron/engine/projection/umap'

/** `clusters` well-separated Gaussian blobs in `dim` dimensions, `per` points each. */
function gaussianClusters(clusters: number, per: number, dim: number, seed: number, spread = 6, sd = 1) {
  const r = new Rng(seed)
  const centres = new Float32Array(clusters * dim).map(() => r.gauss() * spread)
  const n = clusters * per
  const x = new Float32Array(n * dim)
  const labels = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    const c = i % clusters // interleaved, so that label order says nothing about position
    labels[i] = c
    for (let d = 0; d < dim; d++) x[i * dim + d] = centres[c * dim + d] + r.gauss() * sd
  }
  return { x, labels, n }
}

function maxAbs(a: Float32Array): number {
  let m = 0
  for (const v of a) m = Math.max(m, Math.abs(v))
  return m
}

beforeAll(async () => {
  await tf.setBackend('wasm')
  await tf.ready()
})

describe('LatentProjection.fit', () => {
  const dim = 16
  const data = gaussianClusters(6, 300, dim, 1)
  let fitted: LatentProjection
  const events: ProjectionProgress[] = []

  beforeAll(async () => {
    fitted = await LatentProjection.fit(data.x, dim, { seed: 0, frameIntervalMs: 0 }, (p) => events.push(p))
  })

  it('gives a 3-D map that keeps the clusters apart and the neighbourhoods genuine', () => {
    expect(fitted.embedding.length).toBe(data.n * 3)
    expect(fitted.embedding.every(Number.isFinite)).toBe(true)
    // centred and scaled to roughly [-1, 1]^3
    expect(maxAbs(fitted.embedding)).toBeLessThan(1.3)
    expect(maxAbs(fitted.embedding)).toBeGreaterThan(0.8)
    expect(knnClassAccuracy(fitted.embedding, 3, data.labels, 5)).toBeGreaterThan(0.95)
    expect(trustworthiness(data.x, dim, fitted.embedding, 3, 15)).toBeGreaterThan(0.9)
  })

  it('streams intermediate embeddings while the map settles', () => {
    const frames = events.filter((e) => e.embedding)
    expect(events[0].phase).toBe('init')
    expect(events[0].embedding?.length).toBe(data.n * 3)
    const layoutFrames = frames.filter((e) => e.phase === 'layout')
    expect(layoutFrames.length).toBeGreaterThanOrEqual(1)
    for (const f of layoutFrames) {
      expect(f.epoch).toBeGreaterThan(0)
      expect(f.epoch).toBeLessThan(f.totalEpochs)
    }
    const epochs = events.map((e) => e.epoch)
    for (let i = 1; i < epochs.length; i++) expect(epochs[i]).toBeGreaterThanOrEqual(epochs[i - 1])
    const fractions = events.map((e) => e.fraction)
    for (let i = 1; i < fractions.length; i++) expect(fractions[i]).toBeGreaterThanOrEqual(fractions[i - 1])
    const last = events[events.length - 1]
    expect(last.phase).toBe('done')
    expect(last.epoch).toBe(last.totalEpochs)
    expect(Array.from(last.embedding ?? [])).toEqual(Array.from(fitted.embedding))
    // the first frame (the initial layout) is not yet the final map
    expect(Array.from(events[0].embedding ?? [])).not.toEqual(Array.from(fitted.embedding))
  })

  it('places a training point, given again to transform, near its own spot on the map', () => {
    const m = 60
    const idx = Array.from({ length: m }, (_, s) => Math.floor((s * data.n) / m))
    const q = new Float32Array(m * dim)
    idx.forEach((i, s) => q.set(data.x.subarray(i * dim, i * dim + dim), s * dim))
    const placed = fitted.transform(q)
    expect(placed.length).toBe(m * 3)
    let sum = 0
    for (let s = 0; s < m; s++) {
      const i = idx[s]
      const d = Math.hypot(
        placed[s * 3] - fitted.embedding[i * 3],
        placed[s * 3 + 1] - fitted.embedding[i * 3 + 1],
        placed[s * 3 + 2] - fitted.embedding[i * 3 + 2]
      )
      expect(d).toBeLessThan(0.3)
      sum += d
    }
    expect(sum / m).toBeLessThan(0.12)
    // and the placed point sits in its own cluster: its nearest map point has its label
    for (let s = 0; s < m; s++) {
      let best = -1
      let bestD = Infinity
      for (let j = 0; j < data.n; j++) {
        const d =
          (placed[s * 3] - fitted.embedding[j * 3]) ** 2 +
          (placed[s * 3 + 1] - fitted.embedding[j * 3 + 1]) ** 2 +
          (placed[s * 3 + 2] - fitted.embedding[j * 3 + 2]) ** 2
        if (d < bestD) {
          bestD = d
          best = j
        }
      }
      expect(data.labels[best]).toBe(data.labels[idx[s]])
    }
  })

  it('moves an interpolation path continuously from one cluster to the other', () => {
    const a = 0 // label 0
    const b = 1 // label 1
    const steps = 21
    const path = new Float32Array(steps * dim)
    for (let s = 0; s < steps; s++) {
      const t = s / (steps - 1)
      for (let d = 0; d < dim; d++) path[s * dim + d] = data.x[a * dim + d] * (1 - t) + data.x[b * dim + d] * t
    }
    const placed = fitted.transform(path)
    expect(placed.every(Number.isFinite)).toBe(true)
    const dist = (p: number, e: number) =>
      Math.hypot(placed[p * 3] - fitted.embedding[e * 3], placed[p * 3 + 1] - fitted.embedding[e * 3 + 1], placed[p * 3 + 2] - fitted.embedding[e * 3 + 2])
    expect(dist(0, a)).toBeLessThan(0.3)
    expect(dist(steps - 1, b)).toBeLessThan(0.3)
  })

  it('serialises to bytes and JSON and back, transform included', () => {
    const back = LatentProjection.fromBytes(fitted.toBytes())
    expect(back.n).toBe(fitted.n)
    expect(back.dim).toBe(dim)
    expect(back.nComponents).toBe(3)
    expect(back.scale).toBe(fitted.scale)
    expect(Array.from(back.center)).toEqual(Array.from(fitted.center))
    expect(back.options).toEqual(fitted.options)
    expect(Array.from(back.embedding)).toEqual(Array.from(fitted.embedding))
    expect(Array.from(back.latents)).toEqual(Array.from(data.x))
    const q = data.x.subarray(0, 5 * dim)
    expect(Array.from(back.transform(q))).toEqual(Array.from(fitted.transform(q)))

    const viaJson = LatentProjection.fromJSON(JSON.parse(JSON.stringify(fitted)))
    expect(Array.from(viaJson.embedding)).toEqual(Array.from(fitted.embedding))
    expect(Array.from(viaJson.transform(q))).toEqual(Array.from(fitted.transform(q)))

    const corrupt = fitted.toBytes().slice(0, 100)
    expect(() => LatentProjection.fromBytes(corrupt)).toThrow()
    expect(() => LatentProjection.fromBytes(new Uint8Array(16))).toThrow(/not a serialised projection/)
  })
})

describe('LatentProjection.fit options and failures', () => {
  const dim = 8
  const small = gaussianClusters(4, 100, dim, 5)

  it('is reproducible for a seed, and does 2-D with the approximate neighbour search', async () => {
    // One layout thread: the parallel layout is not bit-reproducible (Hogwild).
    const a = await LatentProjection.fit(small.x, dim, { seed: 3, nEpochs: 60, layoutThreads: 1 })
    const b = await LatentProjection.fit(small.x, dim, { seed: 3, nEpochs: 60, layoutThreads: 1 })
    expect(Array.from(a.embedding)).toEqual(Array.from(b.embedding))
    const flat = await LatentProjection.fit(small.x, dim, { nComponents: 2, knn: 'approximate', nEpochs: 150 })
    expect(flat.embedding.length).toBe(small.n * 2)
    expect(flat.stats?.knnMethod).toBe('nn-descent')
    expect(knnClassAccuracy(flat.embedding, 2, small.labels, 5)).toBeGreaterThan(0.95)
    expect(flat.transform(small.x.subarray(0, dim)).length).toBe(2)
  })

  it('cancels through an AbortSignal', async () => {
    const controller = new AbortController()
    let layoutEvents = 0
    const run = LatentProjection.fit(
      small.x,
      dim,
      { nEpochs: 100000, frameIntervalMs: 0 },
      (p) => {
        if (p.phase === 'layout' && ++layoutEvents === 2) controller.abort()
      },
      controller.signal
    )
    await expect(run).rejects.toThrow(/abort/i)
    expect(layoutEvents).toBe(2)

    const pre = new AbortController()
    pre.abort()
    await expect(LatentProjection.fit(small.x, dim, {}, undefined, pre.signal)).rejects.toThrow(/abort/i)
  })

  it('rejects malformed input and copes with tiny sets', async () => {
    await expect(LatentProjection.fit(new Float32Array(10), 3)).rejects.toThrow(/multiple/)
    const bad = small.x.slice()
    bad[7] = Number.NaN
    await expect(LatentProjection.fit(bad, dim)).rejects.toThrow(/non-finite/)
    const two = await LatentProjection.fit(new Float32Array([0, 0, 1, 1]), 2)
    expect(two.embedding.length).toBe(6)
    expect(two.embedding.every(Number.isFinite)).toBe(true)
    const ten = await LatentProjection.fit(small.x.subarray(0, 10 * dim), dim)
    expect(ten.embedding.every(Number.isFinite)).toBe(true)
    // many exact duplicates (e.g. a collapsed encoder): finite map, duplicates together
    const dup = new Float32Array(200 * 4)
    for (let i = 0; i < 200; i++) dup[i * 4] = i < 150 ? 0 : 1
    const d = await LatentProjection.fit(dup, 4, { nEpochs: 50 })
    expect(d.embedding.every(Number.isFinite)).toBe(true)
    expect(d.transform(new Float32Array([1, 0, 0, 0])).every(Number.isFinite)).toBe(true)
  })

  it('gives the same layout however the epochs are cut into chunks', async () => {
    const knn = bruteForceKnn(small.x, small.n, dim, 15)
    const graph = fuzzySimplicialSet(knn)
    const params = { nEpochs: 20, a: 1.577, b: 0.895, gamma: 1, initialAlpha: 1, negativeSampleRate: 5 }
    const init = new Float32Array(small.n * 3).map((_, i) => Math.sin(i) * 10)
    const whole = new LayoutOptimizer(graph, init.slice(), 3, params, new Rng(1))
    while (!whole.done) whole.step()
    const chunked = new LayoutOptimizer(graph, init.slice(), 3, params, new Rng(1))
    while (!chunked.done) chunked.stepEdges(777)
    expect(Array.from(chunked.embedding)).toEqual(Array.from(whole.embedding))
  })
})

// vitest runs the TypeScript sources, so the extra layout thread is projection/layout-worker.ts
// through tsx's require hook (the built app uses out/main/projection-layout-worker.js).
describe('parallel layout (Hogwild SGD on 2 threads)', () => {
  const dim = 16
  // 10 clusters that overlap somewhat, so that neither measure is at its ceiling.
  const data = gaussianClusters(10, 300, dim, 21, 1.1)
  const nEpochs = 200
  let single: LatentProjection
  let parallel: LatentProjection
  const events: ProjectionProgress[] = []
  let workersDuringRun = 0

  beforeAll(async () => {
    single = await LatentProjection.fit(data.x, dim, { seed: 4, nEpochs, layoutThreads: 1 })
    parallel = await LatentProjection.fit(data.x, dim, { seed: 4, nEpochs, layoutThreads: 2, frameIntervalMs: 0 }, (p) => {
      events.push(p)
      if (p.phase === 'layout') workersDuringRun = Math.max(workersDuringRun, liveLayoutWorkers())
    })
  })

  it('runs on 2 threads and stops its worker when done', () => {
    expect(single.stats?.layoutThreads).toBe(1)
    expect(parallel.stats?.layoutThreads).toBe(2)
    expect(workersDuringRun).toBe(1)
    expect(liveLayoutWorkers()).toBe(0)
  })

  it('maps as well as the one-thread layout', () => {
    expect(parallel.embedding.length).toBe(data.n * 3)
    expect(parallel.embedding.every(Number.isFinite)).toBe(true)
    expect(maxAbs(parallel.embedding)).toBeLessThan(1.3)
    const acc1 = knnClassAccuracy(single.embedding, 3, data.labels, 5)
    const acc2 = knnClassAccuracy(parallel.embedding, 3, data.labels, 5)
    const tw1 = trustworthiness(data.x, dim, single.embedding, 3, 15, 1000)
    const tw2 = trustworthiness(data.x, dim, parallel.embedding, 3, 15, 1000)
    // the clusters overlap: 5-NN accuracy in the latents themselves is below 1
    expect(knnClassAccuracy(data.x, dim, data.labels, 5)).toBeLessThan(0.995)
    expect(acc1).toBeGreaterThan(0.8)
    expect(tw1).toBeGreaterThan(0.85)
    expect(acc2).toBeGreaterThan(acc1 - 0.02)
    expect(tw2).toBeGreaterThan(tw1 - 0.01)
  })

  it('streams intermediate embeddings while the map settles', () => {
    const layoutFrames = events.filter((e) => e.phase === 'layout' && e.embedding)
    expect(layoutFrames.length).toBeGreaterThanOrEqual(5)
    for (let i = 1; i < layoutFrames.length; i++) expect(layoutFrames[i].epoch).toBeGreaterThanOrEqual(layoutFrames[i - 1].epoch)
    const first = layoutFrames[0]
    const late = layoutFrames[layoutFrames.length - 1]
    expect(first.epoch).toBeLessThan(late.epoch)
    // early frames are further from the final map than late ones
    const distance = (a: Float32Array) => {
      let s = 0
      for (let i = 0; i < a.length; i++) s += (a[i] - parallel.embedding[i]) ** 2
      return Math.sqrt(s / a.length)
    }
    expect(distance(late.embedding!)).toBeLessThan(distance(first.embedding!))
    const last = events[events.length - 1]
    expect(last.phase).toBe('done')
    expect(Array.from(last.embedding ?? [])).toEqual(Array.from(parallel.embedding))
  })

  it('keeps transform and serialisation working on a parallel map', () => {
    const q = data.x.subarray(0, 10 * dim)
    const placed = parallel.transform(q)
    for (let s = 0; s < 10; s++) {
      const d = Math.hypot(
        placed[s * 3] - parallel.embedding[s * 3],
        placed[s * 3 + 1] - parallel.embedding[s * 3 + 1],
        placed[s * 3 + 2] - parallel.embedding[s * 3 + 2]
      )
      expect(d).toBeLessThan(0.3)
    }
    const back = LatentProjection.fromBytes(parallel.toBytes())
    expect(Array.from(back.embedding)).toEqual(Array.from(parallel.embedding))
    expect(Array.from(back.transform(q))).toEqual(Array.from(placed))
  })

  it('stays reproducible from the seed on one thread', async () => {
    const a = await LatentProjection.fit(data.x, dim, { seed: 9, nEpochs: 30, layoutThreads: 1 })
    const b = await LatentProjection.fit(data.x, dim, { seed: 9, nEpochs: 30, layoutThreads: 1 })
    expect(Array.from(a.embedding)).toEqual(Array.from(b.embedding))
  })

  it('cancels through an AbortSignal, and the worker exits', async () => {
    const controller = new AbortController()
    let layoutEvents = 0
    let workers = 0
    const run = LatentProjection.fit(
      data.x,
      dim,
      { nEpochs: 100000, frameIntervalMs: 0, layoutThreads: 2 },
      (p) => {
        if (p.phase !== 'layout') return
        workers = liveLayoutWorkers()
        if (++layoutEvents === 3) controller.abort()
      },
      controller.signal
    )
    await expect(run).rejects.toThrow(/abort/i)
    expect(layoutEvents).toBe(3)
    expect(workers).toBe(1)
    expect(liveLayoutWorkers()).toBe(0)
  })

  it('finishes the layout on this thread when a layout thread dies mid-layout', async () => {
    const knn = bruteForceKnn(data.x, data.n, dim, 15)
    const params = { nEpochs: 30, a: 1.577, b: 0.895, gamma: 1, initialAlpha: 1, negativeSampleRate: 5 }
    const init = new Float32Array(data.n * 3).map((_, i) => Math.sin(i) * 10)
    // A worker that loads, then exits as soon as it is asked to run an epoch.
    const dying = new Worker(
      "const { parentPort } = require('node:worker_threads');" +
        "parentPort.postMessage({ id: 0, ok: true, body: { type: 'ready' } });" +
        "parentPort.on('message', (m) => { if (m.body.type === 'epoch') process.exit(3) })",
      { eval: true }
    )
    const layout = await Layout.create(layoutEdges(fuzzySimplicialSet(knn), 30, true), init.slice(), 3, params, new Rng(1), [LayoutThread.fromWorker(dying)])
    expect(layout.threads).toBe(2)
    const ticker = new Ticker(undefined, 30)
    while (!layout.done) await layout.runSlice(ticker)
    expect(layout.threads).toBe(1)
    expect(layout.epoch).toBe(30)
    expect(layout.embedding.every(Number.isFinite)).toBe(true)
    // The layout still did its job, about as well as a one-thread layout of the same edges.
    const alone = new LayoutOptimizer(layoutEdges(fuzzySimplicialSet(knn), 30), init.slice(), 3, params, new Rng(1))
    while (!alone.done) alone.step()
    const reference = knnClassAccuracy(alone.embedding, 3, data.labels, 5)
    expect(reference).toBeGreaterThan(0.5)
    expect(knnClassAccuracy(layout.embedding, 3, data.labels, 5)).toBeGreaterThan(reference - 0.05)
    expect(liveLayoutWorkers()).toBe(0)
  })

  it('claiming chunks of edges from shared counters runs each edge once per epoch', () => {
    const knn = bruteForceKnn(data.x, data.n, dim, 15)
    const edges = layoutEdges(fuzzySimplicialSet(knn), 20)
    const params = { nEpochs: 20, a: 1.577, b: 0.895, gamma: 1, initialAlpha: 1, negativeSampleRate: 5 }
    const init = new Float32Array(data.n * 3).map((_, i) => Math.sin(i) * 10)
    const reference = layoutSchedule(edges, 5)
    const whole = new LayoutOptimizer(reference, init.slice(), 3, params, new Rng(1))
    while (!whole.done) whole.step()
    // One optimizer claiming every chunk in turn is the one-thread layout, bit for bit.
    const claims = new Int32Array(new SharedArrayBuffer(3 * 4))
    const alone = new LayoutOptimizer(edges, init.slice(), 3, params, new Rng(1))
    for (let epoch = 0; epoch < 20; epoch++) {
      claims.fill(0)
      alone.beginEpoch()
      expect(alone.runClaimed(epoch, claims, 1000, false)).toBe(true)
    }
    expect(Array.from(alone.embedding)).toEqual(Array.from(whole.embedding))
    // Two optimizers sharing a schedule and an embedding, taking chunks alternately (as two
    // threads might): the sampling bookkeeping ends exactly as on one thread.
    const shared = layoutSchedule(edges, 5, true)
    const embedding = new Float32Array(new SharedArrayBuffer(init.byteLength))
    embedding.set(init)
    const pair = [new LayoutOptimizer(shared, embedding, 3, params, new Rng(2)), new LayoutOptimizer(shared, embedding, 3, params, new Rng(3))]
    const chunk = Math.ceil(edges.head.length / 7)
    for (let epoch = 0; epoch < 20; epoch++) {
      claims.fill(0)
      for (const o of pair) o.beginEpoch()
      // one chunk at a time: the first from the front, the second (twice as often) from the back
      for (let turn = 0, done = false; !done; turn++) {
        const o = turn % 3 === 0 ? 0 : 1
        done = pair[o].runClaimed(epoch, claims, chunk, o === 1, () => true)
      }
    }
    expect(Array.from(shared.epochOfNextSample)).toEqual(Array.from(reference.epochOfNextSample))
    expect(Array.from(shared.epochOfNextNegativeSample)).toEqual(Array.from(reference.epochOfNextNegativeSample))
    expect(embedding.every(Number.isFinite)).toBe(true)
    expect(Array.from(embedding)).not.toEqual(Array.from(whole.embedding)) // other random streams
  })
})

describe('nearest neighbours', () => {
  it('exact tfjs kNN equals brute-force JS kNN', async () => {
    const r = new Rng(11)
    const n = 700
    const dim = 16
    const x = new Float32Array(n * dim).map(() => r.gauss())
    const k = 15
    const ref = bruteForceKnn(x, n, dim, k)
    const got = await exactKnnTf(x, n, dim, k)
    expect(Array.from(got.indices)).toEqual(Array.from(ref.indices))
    for (let i = 0; i < n * k; i++) expect(got.distances[i]).toBeCloseTo(ref.distances[i], 5)
    for (let i = 0; i < n; i++) {
      expect(ref.indices[i * k]).toBe(i)
      expect(ref.distances[i * k]).toBe(0)
    }
    // queries that are not in the data set
    const q = new Float32Array(5 * dim).map(() => r.gauss())
    const gq = await exactKnnTf(x, n, dim, k, undefined, undefined, { data: q, m: 5 })
    const { bruteForceKnnQuery } = await import('../../../../electron/engine/projection/knn')
    const rq = bruteForceKnnQuery(x, n, q, 5, dim, k)
    expect(Array.from(gq.indices)).toEqual(Array.from(rq.indices))
  })

  it('NN-descent finds almost all true neighbours', async () => {
    const data = gaussianClusters(8, 400, 16, 4, 3, 1)
    const exact = bruteForceKnn(data.x, data.n, 16, 15)
    const approx = await nnDescentKnn(data.x, data.n, 16, 15, { seed: 1 })
    expect(approx.indices.length).toBe(data.n * 15)
    for (let i = 0; i < data.n; i++) expect(approx.indices[i * 15]).toBe(i)
    expect(knnRecall(approx, exact)).toBeGreaterThan(0.95)
  })
})

describe('quality measures', () => {
  it('scores a faithful map 1 and a scrambled one much lower', () => {
    const data = gaussianClusters(3, 60, 4, 9)
    expect(knnClassAccuracy(data.x, 4, data.labels, 5)).toBe(1)
    expect(trustworthiness(data.x, 4, data.x, 4, 10)).toBeCloseTo(1, 10)
    const r = new Rng(2)
    const noise = new Float32Array(data.n * 3).map(() => r.gauss())
    expect(trustworthiness(data.x, 4, noise, 3, 10)).toBeLessThan(0.75)
    expect(knnClassAccuracy(noise, 3, data.labels, 5)).toBeLessThan(0.6)
    // sampled versions agree with the full ones on a faithful map
    expect(trustworthiness(data.x, 4, data.x, 4, 10, 20)).toBeCloseTo(1, 10)
  })

  it('fits the same a, b curve as umap-learn', () => {
    const { a, b } = findABParams(1, 0.1)
    expect(a).toBeCloseTo(1.577, 2)
    expect(b).toBeCloseTo(0.895, 2)
  })
})
