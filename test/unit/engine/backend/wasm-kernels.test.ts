import { beforeAll, describe, expect, it } from 'vitest'
import * as tf from '@tensorflow/tfjs'
import '@tensorflow/tfjs-backend-wasm'
import { registerWasmKernels } from '../../../../electron/engine/backend/wasm-kernels'

type Pad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]]

/** Deterministic pseudo-random values in [-1, 1). */
function rand(n: number, seed: number): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    s ^= s << 13
    s >>>= 0
    s ^= s >>> 17
    s ^= s << 5
    s >>>= 0
    out[i] = s / 2147483648 - 1
  }
  return out
}

function size(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1)
}

/** Runs f on a backend; inputs are recreated there from plain arrays, outputs come back as arrays. */
function onBackend(
  backend: string,
  inputs: { shape: number[]; values: Float32Array }[],
  f: (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[]
): { shape: number[]; values: Float32Array }[] {
  const ok = tf.setBackend(backend)
  expect(ok).toBeTruthy()
  expect(tf.getBackend()).toBe(backend)
  return tf.tidy(() => {
    const xs = inputs.map((i) => tf.tensor(i.values, i.shape))
    const r = f(...xs)
    const list = Array.isArray(r) ? r : [r]
    return list.map((t) => ({ shape: t.shape.slice(), values: t.dataSync() as Float32Array }))
  })
}

/** max |a - b| / max |b|, the relative error used throughout. */
function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0
  let den = 0
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]))
    den = Math.max(den, Math.abs(b[i]))
  }
  return den === 0 ? num : num / den
}

function compare(inputs: { shape: number[]; values: Float32Array }[], f: (...xs: tf.Tensor[]) => tf.Tensor | tf.Tensor[], tol = 1e-5): void {
  const want = onBackend('cpu', inputs, f)
  const got = onBackend('wasm', inputs, f)
  expect(got.length).toBe(want.length)
  for (let i = 0; i < want.length; i++) {
    expect(got[i].shape).toEqual(want[i].shape)
    const err = relErr(got[i].values, want[i].values)
    expect(err, `output ${i}, relative error ${err}`).toBeLessThan(tol)
  }
}

function input(shape: number[], seed: number): { shape: number[]; values: Float32Array } {
  return { shape, values: rand(size(shape), seed) }
}

interface ConvCase {
  batch: number
  h: number
  w: number
  cin: number
  cout: number
  k: number
  stride: number | [number, number]
  pad: Pad
}

function name(c: ConvCase): string {
  const pad = typeof c.pad === 'object' ? JSON.stringify(c.pad) : String(c.pad)
  return `b${c.batch} ${c.h}x${c.w}x${c.cin}->${c.cout} k${c.k} s${String(c.stride)} ${pad}`
}

/** Batch 1 and 3; channels 1, 3, 8; kernels 3 and 5; strides 1 and 2; same and valid; odd and even sizes. */
function convCases(): ConvCase[] {
  const channels: [number, number][] = [
    [1, 8],
    [3, 3],
    [8, 1],
    [8, 3],
    [3, 8],
    [1, 1]
  ]
  const cases: ConvCase[] = []
  let i = 0
  for (const batch of [1, 3]) {
    for (const k of [3, 5]) {
      for (const stride of [1, 2]) {
        for (const pad of ['same', 'valid'] as const) {
          for (const [h, w] of [
            [9, 7],
            [8, 10]
          ]) {
            const [cin, cout] = channels[i++ % channels.length]
            cases.push({ batch, h, w, cin, cout, k, stride, pad })
          }
        }
      }
    }
  }
  // Mixed strides, numeric and explicit asymmetric padding, odd sizes that leave rows unused.
  cases.push({ batch: 2, h: 11, w: 9, cin: 3, cout: 8, k: 3, stride: [2, 1], pad: 'same' })
  cases.push({ batch: 2, h: 10, w: 11, cin: 8, cout: 3, k: 3, stride: [1, 2], pad: 'valid' })
  cases.push({ batch: 2, h: 9, w: 9, cin: 3, cout: 3, k: 3, stride: 2, pad: 1 })
  cases.push({
    batch: 1,
    h: 10,
    w: 9,
    cin: 3,
    cout: 3,
    k: 5,
    stride: 2,
    pad: [
      [0, 0],
      [1, 2],
      [3, 0],
      [0, 0]
    ]
  })
  cases.push({ batch: 3, h: 12, w: 12, cin: 8, cout: 8, k: 5, stride: 2, pad: 'valid' })
  cases.push({ batch: 2, h: 14, w: 14, cin: 8, cout: 3, k: 3, stride: 2, pad: 'same' })
  cases.push({ batch: 1, h: 1, w: 1, cin: 3, cout: 3, k: 3, stride: 2, pad: 'same' })
  cases.push({ batch: 2, h: 3, w: 3, cin: 3, cout: 8, k: 3, stride: 1, pad: 'valid' })
  // Per-phase path with unequal strides, and phases without taps (1x1 kernels at stride 2).
  cases.push({ batch: 2, h: 9, w: 8, cin: 12, cout: 5, k: 3, stride: [2, 1], pad: 'same' })
  cases.push({ batch: 1, h: 11, w: 12, cin: 12, cout: 4, k: 5, stride: [1, 2], pad: 'valid' })
  cases.push({ batch: 2, h: 8, w: 7, cin: 8, cout: 4, k: 1, stride: 2, pad: 'valid' })
  cases.push({ batch: 2, h: 8, w: 7, cin: 1, cout: 4, k: 1, stride: 2, pad: 'same' })
  cases.push({ batch: 2, h: 7, w: 7, cin: 8, cout: 4, k: 2, stride: 2, pad: 'same' })
  // Wide rows (the copy interleave) and the reference model's layer shapes at batch 2.
  cases.push({ batch: 2, h: 14, w: 13, cin: 16, cout: 8, k: 3, stride: 2, pad: 'same' })
  cases.push({ batch: 2, h: 15, w: 16, cin: 16, cout: 4, k: 5, stride: 2, pad: 'valid' })
  cases.push({ batch: 2, h: 14, w: 14, cin: 32, cout: 64, k: 3, stride: 2, pad: 'same' })
  cases.push({ batch: 2, h: 28, w: 28, cin: 1, cout: 32, k: 3, stride: 2, pad: 'same' })
  return cases
}

/** Output spatial size of a conv2d (for conv2dTranspose's outputShape and dy shapes). */
function convOut(c: ConvCase): [number, number] {
  const info = tf.backend_util.computeConv2DInfo([c.batch, c.h, c.w, c.cin], [c.k, c.k, c.cin, c.cout], c.stride, 1, c.pad, undefined, false, 'channelsLast')
  return [info.outHeight, info.outWidth]
}

beforeAll(async () => {
  const names = registerWasmKernels()
  expect(names).toContain('Conv2DBackpropFilter')
  expect(names).toContain('Conv2DBackpropInput')
  expect(names).toContain('BatchMatMul')
  expect(registerWasmKernels()).toEqual(names) // idempotent
  expect(await tf.setBackend('wasm')).toBe(true)
  await tf.ready()
  expect(await tf.setBackend('cpu')).toBe(true)
})

describe('wasm kernels against the cpu backend', () => {
  it('registers before and after setBackend, and keeps the stock kernels working', () => {
    tf.setBackend('wasm')
    expect(registerWasmKernels()).toContain('UnsortedSegmentSum')
    const m = tf.tidy(() =>
      tf
        .matMul(
          tf.tensor2d([
            [1, 2],
            [3, 4]
          ]),
          tf.tensor2d([
            [1, 0],
            [0, 1]
          ])
        )
        .arraySync()
    )
    expect(m).toEqual([
      [1, 2],
      [3, 4]
    ])
  })

  for (const c of convCases()) {
    const [oh, ow] = (() => {
      try {
        return convOut(c)
      } catch {
        return [0, 0]
      }
    })()
    it(`conv2d forward + grads (Conv2DBackpropInput, Conv2DBackpropFilter): ${name(c)}`, () => {
      const x = input([c.batch, c.h, c.w, c.cin], 1)
      const f = input([c.k, c.k, c.cin, c.cout], 2)
      const wy = input([c.batch, oh, ow, c.cout], 3)
      compare([x, f, wy], (xt, ft, wt) => {
        const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.stride, c.pad), wt)))
        const [dx, df] = g([xt, ft])
        return [tf.conv2d(xt as tf.Tensor4D, ft as tf.Tensor4D, c.stride, c.pad), dx, df]
      })
    })
    if (typeof c.pad === 'object') continue // conv2dTranspose takes 'same', 'valid' or a number
    it(`conv2dTranspose forward + grads: ${name(c)}`, () => {
      // conv2dTranspose(y, filter, xShape) is conv2DBackpropInput: y has the conv's output shape.
      const y = input([c.batch, oh, ow, c.cout], 4)
      const f = input([c.k, c.k, c.cin, c.cout], 5)
      const wx = input([c.batch, c.h, c.w, c.cin], 6)
      const pad = c.pad as 'same' | 'valid' | number
      compare([y, f, wx], (yt, ft, wt) => {
        const fwd = (a: tf.Tensor, b: tf.Tensor) => tf.conv2dTranspose(a as tf.Tensor4D, b as tf.Tensor4D, [c.batch, c.h, c.w, c.cin], c.stride, pad)
        const [dy, df] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(fwd(a, b), wt)))([yt, ft])
        return [fwd(yt, ft), dy, df]
      })
    })
  }

  // [a shape, b shape, transposeA, transposeB]; broadcast batch dims are checked forward only (tfjs's own
  // BatchMatMul gradient does not reduce broadcast dims, on any backend).
  const mm: [number[], number[], boolean, boolean][] = [
    [[5, 7], [7, 3], false, false],
    [[7, 5], [7, 3], true, false],
    [[5, 7], [3, 7], false, true],
    [[7, 5], [3, 7], true, true],
    [[2, 6, 4], [2, 6, 3], true, false],
    [[2, 4, 6], [1, 3, 6], false, true],
    [[1, 9], [1, 9], true, false],
    [[33, 1], [4, 1], false, true],
    [[128, 64], [128, 40], true, false]
  ]
  for (const [sa, sb, ta, tb] of mm) {
    it(`matMul ${sa} x ${sb} transposeA=${ta} transposeB=${tb}, forward + grads`, () => {
      const a = input(sa, 7)
      const b = input(sb, 8)
      compare([a, b], (at, bt) => {
        const fwd = (p: tf.Tensor, q: tf.Tensor) => tf.matMul(p, q, ta, tb)
        const y = fwd(at, bt)
        if (sa.length > 2 && sa[0] !== sb[0]) return [y]
        const w = tf.tensor(rand(y.size, 9), y.shape)
        const [da, db] = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.mul(fwd(p, q), w)))([at, bt])
        return [y, da, db]
      })
    })
  }

  it('fused matMul (dense layer) with bias and relu, forward + grads', () => {
    const a = input([6, 5], 10)
    const b = input([4, 5], 11)
    const bias = input([4], 12)
    compare([a, b, bias], (at, bt, ct) => {
      const fwd = (p: tf.Tensor, q: tf.Tensor, r: tf.Tensor) =>
        tf.fused.matMul({ a: p as tf.Tensor2D, b: q as tf.Tensor2D, transposeB: true, bias: r, activation: 'relu' })
      const [da, db, dc] = tf.grads((p: tf.Tensor, q: tf.Tensor, r: tf.Tensor) => tf.sum(tf.square(fwd(p, q, r))))([at, bt, ct])
      return [fwd(at, bt, ct), da, db, dc]
    })
  })

  it('Sum over leading axes (bias gradients) and other axes', () => {
    const x = input([3, 5, 4, 6], 13)
    compare([x], (t) => [
      tf.sum(t, [0, 1, 2]),
      tf.sum(t, [0, 1], true),
      tf.sum(t, 0),
      tf.sum(t, [1, 3]),
      tf.sum(t),
      tf.sum(t, -1),
      tf.sum(tf.add(t, tf.tensor1d([1, 2, 3, 4, 5, 6])), [0, 1, 2])
    ])
  })

  it('gather gradient (UnsortedSegmentSum)', () => {
    const table = input([6, 4], 14)
    compare([table], (t) => {
      const idx = tf.tensor1d([0, 3, 3, 5, 1, 0, 3], 'int32')
      const w = tf.tensor(rand(7 * 4, 15), [7, 4])
      const g = tf.grad((p: tf.Tensor) => tf.sum(tf.mul(tf.gather(p, idx), w)))(t)
      const seg = tf.unsortedSegmentSum(tf.tensor(rand(5 * 3, 16), [5, 3]), tf.tensor1d([2, 0, 2, 9, 1], 'int32'), 4)
      return [tf.gather(t, idx), g, seg]
    })
  })

  it('layers.conv2d / conv2dTranspose / dense gradients match', () => {
    const x = input([2, 8, 8, 3], 17)
    const build = (): tf.LayersModel => {
      const inp = tf.input({ shape: [8, 8, 3] })
      let h = tf.layers
        .conv2d({ filters: 4, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.constant({ value: 0.05 }) })
        .apply(inp) as tf.SymbolicTensor
      h = tf.layers
        .conv2dTranspose({ filters: 2, kernelSize: 3, strides: 2, padding: 'same', kernelInitializer: tf.initializers.constant({ value: -0.03 }) })
        .apply(h) as tf.SymbolicTensor
      h = tf.layers.flatten().apply(h) as tf.SymbolicTensor
      h = tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.constant({ value: 0.02 }) }).apply(h) as tf.SymbolicTensor
      return tf.model({ inputs: inp, outputs: h })
    }
    compare([x], (xt) => {
      const model = build()
      const { grads } = tf.variableGrads(() => tf.sum(tf.square(model.apply(xt) as tf.Tensor)) as tf.Scalar)
      const out = model.trainableWeights.map((w) => grads[w.originalName] ?? grads[w.name])
      model.dispose()
      return out
    })
  })
})

describe('training on wasm', () => {
  it('a small conv autoencoder loss decreases over 30 Adam steps', () => {
    tf.setBackend('wasm')
    const n = 16
    // Smooth blobs, 12x12x1.
    const pixels = new Float32Array(n * 12 * 12)
    for (let i = 0; i < n; i++) {
      const cx = 3 + (i % 4) * 2
      const cy = 3 + Math.floor(i / 4) * 2
      for (let y = 0; y < 12; y++) {
        for (let x = 0; x < 12; x++) pixels[(i * 12 + y) * 12 + x] = Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 6)
      }
    }
    const data = tf.tensor4d(pixels, [n, 12, 12, 1])
    const v = (shape: number[], seed: number, scale: number) => tf.variable(tf.mul(tf.tensor(rand(size(shape), seed), shape), scale))
    const w1 = v([3, 3, 1, 8], 20, 0.4)
    const b1 = tf.variable(tf.zeros([8]))
    const w2 = v([3, 3, 8, 16], 21, 0.15)
    const b2 = tf.variable(tf.zeros([16]))
    const w3 = v([3, 3, 8, 16], 22, 0.15) // conv2dTranspose filter: [k, k, outC, inC]
    const b3 = tf.variable(tf.zeros([8]))
    const w4 = v([3, 3, 1, 8], 23, 0.15)
    const b4 = tf.variable(tf.zeros([1]))
    const opt = tf.train.adam(0.01)
    const lossFn = () =>
      tf.tidy(() => {
        let h: tf.Tensor4D = tf.relu(tf.add(tf.conv2d(data, w1 as tf.Tensor4D, 2, 'same'), b1)) // 6x6x8
        h = tf.relu(tf.add(tf.conv2d(h, w2 as tf.Tensor4D, 2, 'same'), b2)) // 3x3x16
        h = tf.relu(tf.add(tf.conv2dTranspose(h, w3 as tf.Tensor4D, [n, 6, 6, 8], 2, 'same'), b3))
        const logits = tf.add(tf.conv2dTranspose(h, w4 as tf.Tensor4D, [n, 12, 12, 1], 2, 'same'), b4)
        return tf.losses.sigmoidCrossEntropy(data, logits) as tf.Scalar
      })
    const losses: number[] = []
    const backend = tf.backend() as unknown as { numDataIds(): number }
    let dataIds = 0
    for (let step = 0; step < 30; step++) {
      if (step === 2) dataIds = backend.numDataIds() // after Adam created its slots
      const loss = opt.minimize(lossFn, true) as tf.Scalar
      losses.push(loss.dataSync()[0])
      loss.dispose()
    }
    expect(backend.numDataIds()).toBe(dataIds) // no wasm buffers leaked by the kernels
    expect(losses.every(Number.isFinite)).toBe(true)
    const first = losses.slice(0, 3).reduce((a, b) => a + b) / 3
    const last = losses.slice(-3).reduce((a, b) => a + b) / 3
    expect(last).toBeLessThan(first * 0.9)
    tf.dispose([data, w1, b1, w2, b2, w3, b3, w4, b4])
    opt.dispose()
  })
})
