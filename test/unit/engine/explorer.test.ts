// The explorer's engine-side computations (electron/engine/explorer.ts) against direct model
// calls and hand-computed values, on tiny untrained models of 8x8 images.
import * as tf from '@tensorflow/tfjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { base64ToBytes, bytesToBase64, type ImagePayload } from '../../../electron/common/contract'
import {
  ancestralSamples,
  classGrid,
  contextFor,
  decodeInSpace,
  informativeOrder,
  interpolateContext,
  interpolatePath,
  klPerDimension,
  latentAtMapPoint,
  nearestNeighbours,
  reconstructionErrors,
  toImagePayloads,
  traversalGrid,
  type SpaceLatents
} from '../../../electron/engine/explorer'
import { klStandardNormalPerDim, sumPerItem } from '../../../models/distributions'
import { createModel, defaultModelConfig, type GaussianParams, type VaeFamilyModel } from '../../../models/index'
import type { Cdvae } from '../../../models/cdvae'

const image8 = { height: 8, width: 8, channels: 1 }
const k8 = 64

let vae: VaeFamilyModel
let vaeConditional: VaeFamilyModel
let srvae: VaeFamilyModel
let srvaeConditional: VaeFamilyModel
let cdvae: Cdvae

beforeAll(async () => {
  await tf.setBackend('cpu')
  vae = createModel(defaultModelConfig('vae', image8, 0, { latentDims: { z: 4 }, seed: 1 }))
  vaeConditional = createModel(defaultModelConfig('vae', image8, 3, { latentDims: { z: 3 }, conditionalPrior: true, seed: 2 }))
  srvae = createModel(defaultModelConfig('srvae', image8, 0, { latentDims: { u: 2, z: 3 }, seed: 3 }))
  srvaeConditional = createModel(defaultModelConfig('srvae', image8, 3, { latentDims: { u: 2, z: 3 }, conditionalPrior: true, seed: 4 }))
  cdvae = createModel(defaultModelConfig('cdvae', image8, 3, { latentDims: { z_l: 2, z_u: 3 }, seed: 5 })) as Cdvae
})

afterAll(() => {
  for (const m of [vae, vaeConditional, srvae, srvaeConditional, cdvae]) m.dispose()
})

/** Deterministic pseudo-random numbers in [0, 1). */
function random(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

function randomPixels(n: number, seed: number): Uint8Array {
  const r = random(seed)
  return Uint8Array.from({ length: n * k8 }, () => Math.floor(r() * 256))
}

function randomLatents(n: number, dim: number, seed: number, scale = 1): Float32Array {
  const r = random(seed)
  return Float32Array.from({ length: n * dim }, () => (r() * 2 - 1) * scale)
}

const xOf = (pixels: Uint8Array, n: number): tf.Tensor4D => tf.tidy(() => tf.tensor4d(pixels, [n, 8, 8, 1]).toFloat().div(255) as tf.Tensor4D)
const bytes = (p: ImagePayload): Uint8Array => base64ToBytes(p.base64)

/** Largest absolute difference between two payloads' bytes (1 allows for rounding at a .5 boundary). */
function maxDiff(a: ImagePayload, b: ImagePayload): number {
  expect([a.width, a.height, a.channels]).toEqual([b.width, b.height, b.channels])
  const ba = bytes(a)
  const bb = bytes(b)
  expect(ba.length).toBe(bb.length)
  let m = 0
  for (let i = 0; i < ba.length; i++) m = Math.max(m, Math.abs(ba[i] - bb[i]))
  return m
}

const expectSameImage = (a: ImagePayload, b: ImagePayload) => expect(maxDiff(a, b)).toBeLessThanOrEqual(1)
const expectDifferentImage = (a: ImagePayload, b: ImagePayload) => expect(maxDiff(a, b)).toBeGreaterThan(2)

/** model.decode through tensors, as payloads. */
function direct(model: VaeFamilyModel, space: string, latents: Float32Array, dim: number, context: Record<string, Float32Array> = {}) {
  return scoped(() => {
    const m = latents.length / dim
    const ctx: Record<string, tf.Tensor2D> = {}
    for (const [name, v] of Object.entries(context)) ctx[name] = tf.tensor2d(v, [m, v.length / m])
    const decoded = model.decode(space, tf.tensor2d(latents, [m, dim]), ctx)
    return Object.fromEntries(Object.entries(decoded).map(([name, t]) => [name, payloadsNow(t)]))
  })
}

/**
 * A synchronous reference for toImagePayloads, written apart from it: the tests run on wasm, where
 * dataSync works (the engine's reads are asynchronous for webgpu's sake).
 */
function payloadsNow(images: tf.Tensor4D): ImagePayload[] {
  const [n, height, width, channels] = images.shape
  const values = images.dataSync()
  const k = height * width * channels
  return Array.from({ length: n }, (_, i) => ({
    width,
    height,
    channels,
    base64: bytesToBase64(Uint8Array.from(values.subarray(i * k, (i + 1) * k), (v) => Math.min(255, Math.max(0, Math.round(v * 255)))))
  }))
}

/** tf.tidy for non-tensor results. */
function scoped<T>(fn: () => T): T {
  tf.engine().startScope()
  try {
    return fn()
  } finally {
    tf.engine().endScope()
  }
}

const row = (values: Float32Array, dim: number, i: number) => values.slice(i * dim, (i + 1) * dim)
const norm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0))

describe('toImagePayloads', () => {
  it('turns [n, h, w, c] in [0, 1] into uint8 payloads, one per item', async () => {
    const t = tf.tensor4d([0, 0.5, 1, 1.2, -0.1, 0.25, 0.999, 0.002], [2, 1, 2, 2])
    const payloads = await toImagePayloads(t)
    t.dispose()
    expect(payloads).toHaveLength(2)
    expect(payloads[0]).toMatchObject({ width: 2, height: 1, channels: 2 })
    expect(Array.from(bytes(payloads[0]))).toEqual([0, 128, 255, 255])
    expect(Array.from(bytes(payloads[1]))).toEqual([0, 64, 255, 1])
  })
})

describe('decodeInSpace', () => {
  it('matches model.decode for the VAE, across decode chunks (300 rows)', async () => {
    const z = randomLatents(300, 4, 1, 2)
    const ours = await decodeInSpace(vae, 'z', z)
    const theirs = direct(vae, 'z', z, 4)
    expect(Object.keys(ours)).toEqual(['x'])
    expect(ours.x).toHaveLength(300)
    for (const i of [0, 1, 255, 256, 299]) expectSameImage(ours.x[i], theirs.x[i])
    expectDifferentImage(ours.x[0], ours.x[1])
  })

  it('SRVAE z with a y context matches model.decode("z", z, {y}), x and y', async () => {
    const pixels = randomPixels(3, 2)
    const enc = scoped(() => Object.fromEntries(Object.entries(srvae.encode(xOf(pixels, 3))).map(([k, t]) => [k, t.dataSync() as Float32Array])))
    const z = randomLatents(3, 3, 3)
    const ours = await decodeInSpace(srvae, 'z', z, { y: enc.y })
    const theirs = direct(srvae, 'z', z, 3, { y: enc.y })
    expect(Object.keys(ours).sort()).toEqual(['x', 'y'])
    for (let i = 0; i < 3; i++) {
      expectSameImage(ours.x[i], theirs.x[i])
      expectSameImage(ours.y[i], theirs.y[i])
    }
    // A shared (1 x dim) context is the same as repeating it per row.
    const y0 = row(enc.y, 16, 0)
    const shared = await decodeInSpace(srvae, 'z', z, { y: y0 })
    const repeated = direct(srvae, 'z', z, 3, { y: Float32Array.from([...y0, ...y0, ...y0]) })
    for (let i = 0; i < 3; i++) expectSameImage(shared.x[i], repeated.x[i])
    await expect(decodeInSpace(srvae, 'z', z)).rejects.toThrow(/needs the y/)
    await expect(decodeInSpace(srvae, 'z', z, { y: new Float32Array(5) })).rejects.toThrow(/context "y"/)
    await expect(decodeInSpace(srvae, 'w', z)).rejects.toThrow(/no latent space "w"/)
  })

  it('CDVAE z_l with a z_u context (and z_u with z_l) matches model.decode', async () => {
    const zl = randomLatents(2, 2, 4)
    const zu = randomLatents(2, 3, 5)
    expectSameImage((await decodeInSpace(cdvae, 'z_l', zl, { z_u: zu })).x[1], direct(cdvae, 'z_l', zl, 2, { z_u: zu }).x[1])
    expectSameImage((await decodeInSpace(cdvae, 'z_u', zu, { z_l: zl })).x[0], direct(cdvae, 'z_u', zu, 3, { z_l: zl }).x[0])
    // The context matters: a different z_u gives a different image.
    expectDifferentImage(
      (await decodeInSpace(cdvae, 'z_l', zl, { z_u: zu })).x[0],
      (await decodeInSpace(cdvae, 'z_l', zl, { z_u: randomLatents(2, 3, 6, 3) })).x[0]
    )
  })
})

describe('contextFor', () => {
  it('is the normalised weighted mean of the items in every other space', () => {
    const latents: SpaceLatents = new Map([
      ['u', { dim: 2, values: Float32Array.from([0, 0, 1, 2, 3, 4, 5, 6]) }],
      ['y', { dim: 16, values: randomLatents(4, 16, 7) }],
      ['z', { dim: 3, values: randomLatents(4, 3, 8) }]
    ])
    const ctx = contextFor(srvae, 'z', [1, 3], [3, 1], latents)
    expect(Object.keys(ctx).sort()).toEqual(['u', 'y'])
    expect(Array.from(ctx.u)).toEqual([0.75 * 1 + 0.25 * 5, 0.75 * 2 + 0.25 * 6])
    const y = latents.get('y')!.values
    for (let d = 0; d < 16; d++) expect(ctx.y[d]).toBeCloseTo(0.75 * y[16 + d] + 0.25 * y[48 + d], 6)
    expect(() => contextFor(srvae, 'z', [1], [0], latents)).toThrow(/positive sum/)
    expect(() => contextFor(srvae, 'z', [9], [1], latents)).toThrow(/no item 9/)
  })
})

describe('latentAtMapPoint', () => {
  const n = 50
  const positions = randomLatents(n, 3, 9, 5)
  const latents = randomLatents(n, 4, 10)

  it("at an item's exact map position returns that item's latent", () => {
    const p = row(positions, 3, 17)
    const hit = latentAtMapPoint(positions, latents, 4, [p[0], p[1], p[2]])
    expect(hit.neighbours[0]).toBe(17)
    expect(hit.neighbours).toHaveLength(8)
    expect(hit.weights[0]).toBeCloseTo(1, 12)
    for (let d = 0; d < 4; d++) expect(hit.latent[d]).toBeCloseTo(latents[17 * 4 + d], 6)
    // Just beside it: almost that latent.
    const near = latentAtMapPoint(positions, latents, 4, [p[0] + 1e-4, p[1], p[2]])
    expect(near.neighbours[0]).toBe(17)
    for (let d = 0; d < 4; d++) expect(near.latent[d]).toBeCloseTo(latents[17 * 4 + d], 3)
  })

  it('is the 1/d^2-weighted mean of the k nearest items in 3D', () => {
    const point: [number, number, number] = [0.3, -0.2, 0.1]
    const got = latentAtMapPoint(positions, latents, 4, point, 5)
    const byDistance = Array.from({ length: n }, (_, i) => ({
      i,
      d2: (positions[3 * i] - point[0]) ** 2 + (positions[3 * i + 1] - point[1]) ** 2 + (positions[3 * i + 2] - point[2]) ** 2
    }))
      .sort((a, b) => a.d2 - b.d2)
      .slice(0, 5)
    expect(got.neighbours).toEqual(byDistance.map((e) => e.i))
    const raw = byDistance.map((e) => 1 / e.d2)
    const total = raw.reduce((s, w) => s + w, 0)
    got.weights.forEach((w, j) => expect(w).toBeCloseTo(raw[j] / total, 6))
    expect(got.weights.reduce((s, w) => s + w, 0)).toBeCloseTo(1, 10)
    for (let d = 0; d < 4; d++) {
      const expected = byDistance.reduce((s, e, j) => s + (raw[j] / total) * latents[e.i * 4 + d], 0)
      expect(got.latent[d]).toBeCloseTo(expected, 5)
    }
  })
})

describe('interpolatePath', () => {
  const a = Float32Array.from([1.5, -0.5, 0.25, 2])
  const b = Float32Array.from([-0.3, 1.2, 0.8, -0.4])

  it('linear: ends are a and b exactly, the middle is the average', () => {
    const path = interpolatePath(a, b, 5, 'linear')
    expect(path).toHaveLength(20)
    expect(Array.from(row(path, 4, 0))).toEqual(Array.from(a))
    expect(Array.from(row(path, 4, 4))).toEqual(Array.from(b))
    for (let d = 0; d < 4; d++) expect(path[2 * 4 + d]).toBeCloseTo((a[d] + b[d]) / 2, 6)
  })

  it('spherical: ends exact, norms between the ends, directions along the great circle', () => {
    const steps = 9
    const path = interpolatePath(a, b, steps, 'spherical')
    expect(Array.from(row(path, 4, 0))).toEqual(Array.from(a))
    expect(Array.from(row(path, 4, steps - 1))).toEqual(Array.from(b))
    const [na, nb] = [norm(a), norm(b)]
    const cosAB = Array.from(a).reduce((s, v, d) => s + v * b[d], 0) / (na * nb)
    const omega = Math.acos(cosAB)
    for (let i = 0; i < steps; i++) {
      const v = row(path, 4, i)
      const t = i / (steps - 1)
      expect(norm(v)).toBeGreaterThanOrEqual(Math.min(na, nb) - 1e-5)
      expect(norm(v)).toBeLessThanOrEqual(Math.max(na, nb) + 1e-5)
      expect(norm(v)).toBeCloseTo((1 - t) * na + t * nb, 5)
      // The angle to a grows linearly: t * omega.
      const cos = Array.from(v).reduce((s, x, d) => s + x * a[d], 0) / (norm(v) * na)
      expect(Math.acos(Math.min(1, cos))).toBeCloseTo(t * omega, 3)
    }
    // The linear path cuts inside: its middle is shorter than both ends here.
    expect(norm(row(interpolatePath(a, b, steps, 'linear'), 4, 4))).toBeLessThan(Math.min(na, nb))
  })

  it('spherical falls back to linear for parallel ends', () => {
    const c = Float32Array.from([2, -1, 0.5, 4])
    const s = interpolatePath(
      a,
      Float32Array.from(a, (v) => 3 * v),
      4,
      'spherical'
    )
    const l = interpolatePath(
      a,
      Float32Array.from(a, (v) => 3 * v),
      4,
      'linear'
    )
    expect(Array.from(s)).toEqual(Array.from(l))
    expect(Array.from(interpolatePath(new Float32Array(4), c, 3, 'spherical'))).toEqual(Array.from(interpolatePath(new Float32Array(4), c, 3, 'linear')))
    expect(() => interpolatePath(a, b, 1, 'linear')).toThrow(/at least 2/)
  })

  it("the path's decodings at the ends equal decodeInSpace of a and b (SRVAE z with y alongside)", async () => {
    const pixels = randomPixels(2, 11)
    const enc = scoped(() => Object.fromEntries(Object.entries(srvae.encode(xOf(pixels, 2))).map(([k, t]) => [k, t.dataSync() as Float32Array])))
    const za = row(enc.z, 3, 0)
    const zb = Float32Array.from(row(enc.z, 3, 1), (v) => v + 1.5)
    const ya = row(enc.y, 16, 0)
    const yb = row(enc.y, 16, 1)
    const steps = 6
    const path = interpolatePath(za, zb, steps, 'spherical')
    const ctx = interpolateContext({ y: ya }, { y: yb }, steps)
    expect(ctx.y).toHaveLength(steps * 16)
    for (let d = 0; d < 16; d++) expect(ctx.y[3 * 16 + d]).toBeCloseTo(ya[d] + 0.6 * (yb[d] - ya[d]), 6)
    const decoded = await decodeInSpace(srvae, 'z', path, ctx)
    expect(decoded.x).toHaveLength(steps)
    expectSameImage(decoded.x[0], (await decodeInSpace(srvae, 'z', za, { y: ya })).x[0])
    expectSameImage(decoded.x[steps - 1], (await decodeInSpace(srvae, 'z', zb, { y: yb })).x[0])
    expectSameImage(decoded.y[steps - 1], (await decodeInSpace(srvae, 'z', zb, { y: yb })).y[0])
    // And a plain VAE path.
    const va = randomLatents(1, 4, 12, 2)
    const vb = randomLatents(1, 4, 13, 2)
    const vaePath = (await decodeInSpace(vae, 'z', interpolatePath(va, vb, 4, 'linear'))).x
    expectSameImage(vaePath[0], (await decodeInSpace(vae, 'z', va)).x[0])
    expectSameImage(vaePath[3], (await decodeInSpace(vae, 'z', vb)).x[0])
  })
})

describe('classGrid', () => {
  it('CDVAE: one column per class, one shared draw per row, checked against model.sample with the same noise', async () => {
    const grid = await classGrid(cdvae, { rows: 3, temperature: 0.8, seed: 7 })
    expect(grid.classes).toBe(3)
    expect(grid.rows).toBe(3)
    expect(grid.images).toHaveLength(3)
    for (const r of grid.images) expect(r).toHaveLength(3)
    expect(grid.yImages).toBeUndefined()
    expect(Object.keys(grid.noise).sort()).toEqual(['z_l', 'z_u'])
    expect(grid.noise.z_u).toHaveLength(9)
    // Rows differ from each other; columns differ from each other.
    expectDifferentImage(grid.images[0][0], grid.images[1][0])
    expectDifferentImage(grid.images[1][2], grid.images[2][2])
    expectDifferentImage(grid.images[0][0], grid.images[0][1])
    // Every cell (r, c) is model.sample of class c with row r's noise: the same for every class.
    for (let r = 0; r < 3; r++) {
      for (let c = 0; c < 3; c++) {
        const manual = scoped(() =>
          payloadsNow(
            cdvae.sample(1, {
              classIndex: c,
              temperature: 0.8,
              noise: { z_l: tf.tensor2d(row(grid.noise.z_l, 2, r), [1, 2]), z_u: tf.tensor2d(row(grid.noise.z_u, 3, r), [1, 3]) }
            }).x
          )
        )
        expectSameImage(grid.images[r][c], manual[0])
      }
    }
    // The same seed gives the same grid; another seed another.
    const again = await classGrid(cdvae, { rows: 3, temperature: 0.8, seed: 7 })
    expect(again.images[2][1].base64).toBe(grid.images[2][1].base64)
    expectDifferentImage((await classGrid(cdvae, { rows: 1, temperature: 0.8, seed: 8 })).images[0][0], grid.images[0][0])
  })

  it('CDVAE fromItem: z_u fixed to the item, row 0 the class-prior mean in z_l', async () => {
    const pixels = randomPixels(2, 14)
    const enc = scoped(() => Object.fromEntries(Object.entries(cdvae.encode(xOf(pixels, 2))).map(([k, t]) => [k, t.dataSync() as Float32Array])))
    const item = { z_l: row(enc.z_l, 2, 0), z_u: row(enc.z_u, 3, 0) }
    const grid = await classGrid(cdvae, { rows: 2, temperature: 1, seed: 3, fromItem: item })
    expect(Object.keys(grid.noise)).toEqual(['z_l'])
    const means = cdvae.prior.means.dataSync() as Float32Array
    for (let c = 0; c < 3; c++) {
      const expected = (await decodeInSpace(cdvae, 'z_l', means.slice(c * 2, c * 2 + 2), { z_u: item.z_u })).x[0]
      expectSameImage(grid.images[0][c], expected)
      // Row 1 varies z_l around the class mean, still with the item's z_u.
      const manual = scoped(() =>
        payloadsNow(
          cdvae.sample(1, {
            classIndex: c,
            temperature: 1,
            noise: { z_l: tf.tensor2d(row(grid.noise.z_l, 2, 1), [1, 2]) },
            fixed: { z_u: tf.tensor2d(item.z_u, [1, 3]) }
          }).x
        )
      )
      expectSameImage(grid.images[1][c], manual[0])
    }
    // Another item's z_u gives another row.
    const other = await classGrid(cdvae, { rows: 1, temperature: 1, seed: 3, fromItem: { z_u: Float32Array.from(item.z_u, (v) => v + 2) } })
    expectDifferentImage(other.images[0][0], grid.images[0][0])
    await expect(classGrid(cdvae, { rows: 1, temperature: 1, seed: 3, fromItem: { z_l: item.z_l } })).rejects.toThrow(/z_u/)
  })

  it('SRVAE with a conditional prior on u returns y beside x; unconditional models throw', async () => {
    const grid = await classGrid(srvaeConditional, { rows: 2, temperature: 1, seed: 5 })
    expect(grid.yImages).toHaveLength(2)
    expect(grid.yImages![0]).toHaveLength(3)
    expect(grid.yImages![0][0]).toMatchObject({ width: 4, height: 4, channels: 1 })
    expect(Object.keys(grid.noise).sort()).toEqual(['u', 'z'])
    const manual = scoped(() => {
      const s = srvaeConditional.sample(1, {
        classIndex: 2,
        temperature: 1,
        noise: { u: tf.tensor2d(row(grid.noise.u, 2, 1), [1, 2]), z: tf.tensor2d(row(grid.noise.z, 3, 1), [1, 3]) }
      })
      return { x: payloadsNow(s.x)[0], y: payloadsNow(s.y)[0] }
    })
    expectSameImage(grid.images[1][2], manual.x)
    expectSameImage(grid.yImages![1][2], manual.y)
    await expect(classGrid(srvaeConditional, { rows: 1, temperature: 1, seed: 0, fromItem: {} })).rejects.toThrow(/free latent space/)
    await expect(classGrid(vae, { rows: 1, temperature: 1, seed: 0 })).rejects.toThrow(/no class-conditional prior/)
    await expect(classGrid(srvae, { rows: 1, temperature: 1, seed: 0 })).rejects.toThrow(/no class-conditional prior/)
    const vaeGrid = await classGrid(vaeConditional, { rows: 2, temperature: 1, seed: 1 })
    expect(vaeGrid.images[1]).toHaveLength(3)
  })
})

describe('ancestralSamples', () => {
  it('SRVAE: n samples of x with their y, reproducible with the seed', async () => {
    const s = await ancestralSamples(srvae, 4, 1, 21)
    expect(Object.keys(s).sort()).toEqual(['x', 'y'])
    expect(s.x).toHaveLength(4)
    expect(s.y[0]).toMatchObject({ width: 4, height: 4 })
    expect((await ancestralSamples(srvae, 4, 1, 21)).x[3].base64).toBe(s.x[3].base64)
    expectDifferentImage(s.x[0], s.x[1])
    const direct = scoped(() => payloadsNow(srvae.sample(4, { temperature: 1, seed: 21 }).x))
    expectSameImage(s.x[2], direct[2])
  })
})

describe('klPerDimension', () => {
  it('agrees with the closed form on a known posterior (batched)', async () => {
    // A stub whose posterior is a known function of the pixels.
    const stub = {
      posteriors(x: tf.Tensor4D): Record<string, GaussianParams> {
        const flat = x.reshape([x.shape[0], 4]) as tf.Tensor2D
        return { s: { mu: flat.mul(2).sub(1), logvar: flat.sub(0.5).mul(3) } }
      }
    }
    const n = 7
    const r = random(15)
    const values = Array.from({ length: n * 4 }, () => r())
    const x = tf.tensor4d(values, [n, 2, 2, 1])
    const got = (await klPerDimension(stub, x, 3)).s
    x.dispose()
    expect(got).toHaveLength(4)
    for (let d = 0; d < 4; d++) {
      let sum = 0
      for (let i = 0; i < n; i++) {
        const v = values[i * 4 + d]
        const mu = 2 * v - 1
        const lv = 3 * (v - 0.5)
        sum += 0.5 * (mu * mu + Math.exp(lv) - 1 - lv)
      }
      expect(got[d]).toBeCloseTo(sum / n, 5)
    }
  })

  it("sums over dimensions to the model's mean KL to N(0, I)", async () => {
    const x = xOf(randomPixels(10, 16), 10)
    const kl = await klPerDimension(srvae, x, 4)
    expect(Object.keys(kl).sort()).toEqual(['u', 'z'])
    const expected = scoped(() => {
      const q = srvae.posteriors(x).z
      return sumPerItem(klStandardNormalPerDim(q.mu, q.logvar)).mean().dataSync()[0]
    })
    x.dispose()
    expect(kl.z.reduce((s, v) => s + v, 0)).toBeCloseTo(expected, 4)
    expect(informativeOrder(Float32Array.from([0.1, 2, 0.1, 5]))).toEqual([3, 1, 0, 2])
  })
})

describe('traversalGrid', () => {
  it('[dimension][value]: each cell is the item with one dimension changed (direct decodes)', async () => {
    const item = Float32Array.from([0.3, -0.7, 1.1, 0.2])
    const values = [-3, -1, 0, 1, 3]
    const grid = await traversalGrid(vae, 'z', item, undefined, [2, 0], values)
    expect(grid).toHaveLength(2)
    expect(grid[0]).toHaveLength(5)
    for (const [i, d] of [2, 0].entries()) {
      for (const [j, v] of values.entries()) {
        const latent = Float32Array.from(item)
        latent[d] = v
        expectSameImage(grid[i][j], (await decodeInSpace(vae, 'z', latent)).x[0])
      }
    }
    expectDifferentImage(grid[0][0], grid[0][4])
    // Offset mode: the item's value plus each value; offset 0 is the item itself.
    const offsets = await traversalGrid(vae, 'z', item, undefined, [1], [-1, 0, 1], { mode: 'offset' })
    expectSameImage(offsets[0][1], (await decodeInSpace(vae, 'z', item)).x[0])
    const shifted = Float32Array.from(item)
    shifted[1] += 1
    expectSameImage(offsets[0][2], (await decodeInSpace(vae, 'z', shifted)).x[0])
    await expect(traversalGrid(vae, 'z', item, undefined, [4], values)).rejects.toThrow(/no dimension 4/)
  })

  it('SRVAE z traversal holds the item y (shared context); y images on request', async () => {
    const pixels = randomPixels(1, 17)
    const enc = scoped(() => Object.fromEntries(Object.entries(srvae.encode(xOf(pixels, 1))).map(([k, t]) => [k, t.dataSync() as Float32Array])))
    const grid = await traversalGrid(srvae, 'z', enc.z, { y: enc.y }, [1], [-2, 2])
    const latent = Float32Array.from(enc.z)
    latent[1] = 2
    expectSameImage(grid[0][1], direct(srvae, 'z', latent, 3, { y: enc.y }).x[0])
    const u = await traversalGrid(srvae, 'u', enc.u, undefined, [0], [-2, 2], { image: 'y' })
    expect(u[0][0]).toMatchObject({ width: 4, height: 4 })
    expectDifferentImage(u[0][0], u[0][1])
  })
})

describe('nearestNeighbours', () => {
  it('matches a naive sort (ties by index), excluding the item', () => {
    const n = 400
    const dim = 5
    const latents = randomLatents(n, dim, 18)
    // A duplicate of item 10 and of item 11 to create ties.
    latents.set(row(latents, dim, 10), 200 * dim)
    latents.set(row(latents, dim, 10), 300 * dim)
    for (const index of [10, 0, 399]) {
      const naive = Array.from({ length: n }, (_, i) => {
        let s = 0
        for (let d = 0; d < dim; d++) s += (latents[i * dim + d] - latents[index * dim + d]) ** 2
        return { i, s }
      })
        .filter((e) => e.i !== index)
        .sort((a, b) => a.s - b.s || a.i - b.i)
        .map((e) => e.i)
      expect(nearestNeighbours(latents, dim, index, 12)).toEqual(naive.slice(0, 12))
    }
    expect(nearestNeighbours(latents, dim, 10, 2)).toEqual([200, 300])
    expect(nearestNeighbours(latents, dim, 0, 1000)).toHaveLength(n - 1)
  })
})

describe('reconstructionErrors', () => {
  it('is the per-item MSE between x and model.reconstruct(x).x, in batches', async () => {
    const n = 11
    const pixels = randomPixels(n, 19)
    const errors = await reconstructionErrors(srvae, pixels, image8, 4)
    expect(errors).toHaveLength(n)
    const expected = scoped(() => {
      const x = xOf(pixels, n)
      return Array.from(x.sub(srvae.reconstruct(x).x).square().mean([1, 2, 3]).dataSync())
    })
    for (let i = 0; i < n; i++) expect(errors[i]).toBeCloseTo(expected[i], 6)
    const progress: number[] = []
    const inFives = await reconstructionErrors(srvae, pixels, image8, 5, (done) => progress.push(done))
    expect(inFives).toHaveLength(n)
    for (let i = 0; i < n; i++) expect(inFives[i]).toBeCloseTo(errors[i], 6)
    expect(progress).toEqual([5, 10, 11])
    await expect(reconstructionErrors(vae, new Uint8Array(70), image8)).rejects.toThrow(/whole number/)
  })
})

describe('tensor hygiene', () => {
  it('leaves no tensors behind', async () => {
    const before = tf.memory().numTensors
    await decodeInSpace(srvae, 'z', randomLatents(3, 3, 20), { y: randomLatents(1, 16, 21) })
    await classGrid(cdvae, { rows: 2, temperature: 1, seed: 1 })
    await classGrid(srvaeConditional, { rows: 2, temperature: 1, seed: 1 })
    await ancestralSamples(srvae, 2, 1, 1)
    await traversalGrid(cdvae, 'z_u', randomLatents(1, 3, 22), { z_l: randomLatents(1, 2, 23) }, [0, 1], [-1, 1])
    await reconstructionErrors(cdvae, randomPixels(3, 24), image8, 2)
    const x = xOf(randomPixels(3, 25), 3)
    await klPerDimension(cdvae, x, 2)
    x.dispose()
    expect(tf.memory().numTensors).toBe(before)
  })
})
