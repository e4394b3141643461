/**
 * Extra and faster kernels for TensorFlow.js's WebAssembly backend, so that it can train conv nets.
 *
 * The stock wasm backend (tfjs-backend-wasm 4.22) has no `Conv2DBackpropFilter` (so conv2d, conv2dTranspose
 * and layers.conv2d cannot be trained), a naive `Conv2DBackpropInput` (~10x slower than the XNNPACK forward
 * Conv2D), a naive transposed matMul (10-20x slower than transposing first), a Sum over leading axes that
 * transposes first, copying Identity/Cast kernels, and no `UnsortedSegmentSum` (tf.gather's gradient).
 * `registerWasmKernels()` registers replacements built from the stock wasm kernels (called directly through
 * their kernelFuncs, never through high-level ops) and a few loops over the wasm heap:
 *
 * - Conv2DBackpropInput (also conv2dTranspose's forward pass): sub-pixel decomposition. For stride s, each of
 *   the s*s output phases is a stride-1 Conv2D of dy with that phase's taps of the filter (flipped, in/out
 *   swapped): exactly the forward conv's FLOPs, no zero insertion. The phases are interleaved with rank-3
 *   Transposes/row copies and cropped. With few output channels (a last layer) all phases go in one Conv2D.
 * - Conv2DBackpropFilter: a Conv2D of x transposed to [C1, H, W, N] with dy transposed to [OH, OW, N, C2] as
 *   the filter, dilated by the stride. With few input channels (a first layer): the transposed patch matrix
 *   times dy, one GEMM. (im2col + GEMM for every conv, forward and backward, was measured too: on these
 *   shapes it is no faster than XNNPACK's own convolution, so the stock Conv2D stays.)
 * - BatchMatMul / _FusedMatMul with transposeA/transposeB: explicit Transpose, then the stock XNNPACK path,
 *   in the orientation that packs the smaller operand; plus a guard for the stock operator cache (below).
 * - Sum over leading axes (bias gradients): XNNPACK average pooling instead of transpose + reduce.
 * - Identity and same-dtype Cast: share the input's data instead of copying (as the cpu backend does).
 * - UnsortedSegmentSum: a loop over the heap.
 *
 * Pure TensorFlow.js + typed arrays: runs in Node and in browsers. Conv kernels handle NHWC, float32, any
 * stride, kernel size and padding ('same', 'valid', numbers, explicit), dilation 1; other cases fall back
 * to the stock kernel where one exists. Checked against the cpu backend in test/unit/engine/backend/wasm-kernels.test.ts.
 */
import * as tf from '@tensorflow/tfjs'
import '@tensorflow/tfjs-backend-wasm'

type TensorInfo = tf.TensorInfo
type KernelFunc = tf.KernelFunc
type Attrs = tf.NamedAttrMap

/** The part of tfjs-backend-wasm's BackendWasm that these kernels use. */
interface WasmBackend {
  makeOutput(shape: number[], dtype: tf.DataType): TensorInfo
  disposeData(dataId: tf.DataId, force?: boolean): boolean
  typedArrayFromHeap(info: TensorInfo): Float32Array | Int32Array | Uint8Array
  incRef(dataId: tf.DataId): void
  dataIdMap: { get(dataId: tf.DataId): { id: number } | undefined }
}

const BACKEND = 'wasm'

/** Stock wasm kernel functions, saved before any replacement is registered. */
const stock = new Map<string, KernelFunc>()
let registered: string[] | null = null

function stockKernel(name: string): KernelFunc {
  const fn = stock.get(name)
  if (fn == null) throw new Error(`wasm kernels: stock kernel ${name} is not available`)
  return fn
}

function run(name: string, backend: WasmBackend, inputs: tf.NamedTensorInfoMap, attrs: Attrs = {}): TensorInfo {
  return stockKernel(name)({ inputs, backend, attrs }) as TensorInfo
}

function free(backend: WasmBackend, ...infos: TensorInfo[]): void {
  for (const info of infos) backend.disposeData(info.dataId)
}

function f32(backend: WasmBackend, info: TensorInfo): Float32Array {
  // A fresh view each time: the heap's ArrayBuffer changes whenever wasm memory grows.
  return backend.typedArrayFromHeap(info) as Float32Array
}

function reshape(backend: WasmBackend, x: TensorInfo, shape: number[]): TensorInfo {
  return run(tf.Reshape, backend, { x }, { shape })
}

function transpose(backend: WasmBackend, x: TensorInfo, perm: number[]): TensorInfo {
  return run(tf.Transpose, backend, { x }, { perm })
}

function conv2d(
  backend: WasmBackend,
  x: TensorInfo,
  filter: TensorInfo,
  pad: [[number, number], [number, number], [number, number], [number, number]],
  dilations: [number, number]
): TensorInfo {
  return run(
    tf.Conv2D,
    backend,
    { x, filter },
    {
      strides: [1, 1],
      pad,
      dataFormat: 'NHWC',
      dilations,
      dimRoundingMode: undefined as unknown as string
    }
  )
}

function isNHWC(dataFormat: unknown): boolean {
  return dataFormat == null || dataFormat === 'NHWC'
}

// ---------------------------------------------------------------------------------------------------------
// Conv2DBackpropInput (also the forward pass of conv2dTranspose)
// ---------------------------------------------------------------------------------------------------------

type ConvPad = 'same' | 'valid' | number | tf.backend_util.ExplicitPadding

/** Copies equally shaped TensorInfos, one after the other, into a new [parts.length, ...] buffer; frees them. */
function stack(backend: WasmBackend, parts: TensorInfo[], shape: number[]): TensorInfo {
  const out = backend.makeOutput(shape, 'float32')
  const dst = f32(backend, out)
  let offset = 0
  for (const p of parts) {
    const src = f32(backend, p)
    dst.set(src, offset)
    offset += src.length
  }
  free(backend, ...parts)
  return out
}

/**
 * dx of a conv2d (NHWC, dilation 1) by sub-pixel decomposition. With u = iy + pt, q = floor(u / s) and
 * r = u mod s, dx[iy] = sum_j dy[q - j] * f[r + s*j]: for each phase (rY, rX) a stride-1 Conv2D of dy with
 * exactly the taps of that phase (spatially flipped, in/out channels swapped). No zero insertion and no
 * multiplications by zero: the same FLOPs as the forward conv. The phase outputs are interleaved with two
 * rank-3 Transposes (rank-5 Transposes are slow on wasm) and cropped.
 */
function conv2DBackpropInput(args: Parameters<KernelFunc>[0]): TensorInfo {
  const backend = args.backend as WasmBackend
  const dy = args.inputs.dy as TensorInfo
  const filter = args.inputs.filter as TensorInfo
  const attrs = args.attrs ?? {}
  const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs as unknown as {
    strides: number | [number, number]
    pad: ConvPad
    dataFormat?: 'NHWC' | 'NCHW'
    dimRoundingMode?: 'floor' | 'round' | 'ceil'
    inputShape: [number, number, number, number]
  }
  if (!isNHWC(dataFormat) || dy.dtype !== 'float32' || filter.dtype !== 'float32') {
    return stockKernel(tf.Conv2DBackpropInput)(args) as TensorInfo
  }
  const info = tf.backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as [number, number, number, number],
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    'channelsLast'
  )
  const {
    batchSize: N,
    inHeight: H,
    inWidth: W,
    inChannels: C1,
    outHeight: OH,
    outWidth: OW,
    outChannels: C2,
    strideHeight: sh,
    strideWidth: sw,
    filterHeight: kh,
    filterWidth: kw
  } = info
  const pt = info.padInfo.top
  const pl = info.padInfo.left

  // Taps per phase: rows rY, rY + sh, ... < kh. Phases without taps (kernel smaller than stride) give zeros.
  const tapsY = Array.from({ length: sh }, (_, r) => Math.max(0, Math.ceil((kh - r) / sh)))
  const tapsX = Array.from({ length: sw }, (_, r) => Math.max(0, Math.ceil((kw - r) / sw)))
  const minY = Math.min(...tapsY.filter((t) => t > 0))
  const minX = Math.min(...tapsX.filter((t) => t > 0))
  // Conv output row m is q = qStart + m; every phase has the same number of rows Mh.
  const qStartY = Math.min(Math.floor(pt / sh), minY - 1)
  const qStartX = Math.min(Math.floor(pl / sw), minX - 1)
  const padB = Math.max(0, Math.floor((H - 1 + pt) / sh) + 1 - OH)
  const padR = Math.max(0, Math.floor((W - 1 + pl) / sw) + 1 - OW)
  const Mh = OH + padB - qStartY
  const Mw = OW + padR - qStartX
  const offY = pt - qStartY * sh
  const offX = pl - qStartX * sw

  if (sh * sw > 1 && sh * sw * C1 <= COMBINED_MAX_CHANNELS) {
    return combinedPhases(backend, dy, filter, { N, H, W, C1, C2, sh, sw, kw, tapsY, tapsX, qStartY, qStartX, padB, padR, offY, offX })
  }

  const phases: TensorInfo[] = []
  for (let rY = 0; rY < sh; rY++) {
    for (let rX = 0; rX < sw; rX++) {
      const Jy = tapsY[rY]
      const Jx = tapsX[rX]
      if (Jy === 0 || Jx === 0) {
        const z = backend.makeOutput([N, Mh, Mw, C1], 'float32')
        f32(backend, z).fill(0)
        phases.push(z)
        continue
      }
      // g[tY, tX, c2, c1] = f[rY + sh*(Jy-1-tY), rX + sw*(Jx-1-tX), c1, c2]
      const g = backend.makeOutput([Jy, Jx, C2, C1], 'float32')
      const gv = f32(backend, g)
      const fv = f32(backend, filter)
      for (let tY = 0; tY < Jy; tY++) {
        const ky = rY + sh * (Jy - 1 - tY)
        for (let tX = 0; tX < Jx; tX++) {
          const kx = rX + sw * (Jx - 1 - tX)
          const gBase = (tY * Jx + tX) * C2 * C1
          const fBase = (ky * kw + kx) * C1 * C2
          for (let c1 = 0; c1 < C1; c1++) {
            const fRow = fBase + c1 * C2
            for (let c2 = 0; c2 < C2; c2++) gv[gBase + c2 * C1 + c1] = fv[fRow + c2]
          }
        }
      }
      const padT = Jy - 1 - qStartY
      const padL = Jx - 1 - qStartX
      phases.push(
        conv2d(
          backend,
          dy,
          g,
          [
            [0, 0],
            [padT, padB],
            [padL, padR],
            [0, 0]
          ],
          [1, 1]
        )
      )
      free(backend, g)
    }
  }

  // Interleave: columns within each row phase, then the row phases.
  const rowPhases: TensorInfo[] = []
  for (let rY = 0; rY < sh; rY++) {
    const parts = phases.slice(rY * sw, (rY + 1) * sw)
    if (sw === 1) {
      rowPhases.push(parts[0])
      continue
    }
    const st = stack(backend, parts, [sw, N * Mh * Mw, C1])
    rowPhases.push(transpose(backend, st, [1, 0, 2])) // [N*Mh*Mw, sw, C1] = [N*Mh, Mw*sw*C1]
    free(backend, st)
  }
  let full: TensorInfo
  const rowLen = Mw * sw * C1
  if (sh === 1) {
    full = rowPhases[0]
  } else if (rowLen >= 128) {
    // Long rows: interleave them with plain copies (cheaper than a stack + Transpose).
    full = backend.makeOutput([N * Mh * sh, rowLen], 'float32')
    const dst = f32(backend, full)
    for (let rY = 0; rY < sh; rY++) {
      const src = f32(backend, rowPhases[rY])
      for (let row = 0; row < N * Mh; row++) {
        dst.set(src.subarray(row * rowLen, (row + 1) * rowLen), (row * sh + rY) * rowLen)
      }
    }
    free(backend, ...rowPhases)
  } else {
    const st = stack(backend, rowPhases, [sh, N * Mh, rowLen])
    full = transpose(backend, st, [1, 0, 2]) // [N*Mh, sh, Mw*sw*C1] = [N, Mh*sh, Mw*sw, C1]
    free(backend, st)
  }
  return crop(backend, full, [N, Mh * sh, Mw * sw, C1], H, W, offY, offX)
}

/** full ([N, FH, FW, C]) cropped to [N, H, W, C] from (offY, offX); frees full unless it is returned as is. */
function crop(backend: WasmBackend, full: TensorInfo, fullShape: number[], H: number, W: number, offY: number, offX: number): TensorInfo {
  const [N, FH, FW, C] = fullShape
  if (FH === H && FW === W && offY === 0 && offX === 0) {
    return { dataId: full.dataId, shape: [N, H, W, C], dtype: 'float32' }
  }
  const out = backend.makeOutput([N, H, W, C], 'float32')
  const src = f32(backend, full)
  const dst = f32(backend, out)
  const rowLen = W * C
  for (let n = 0; n < N; n++) {
    for (let y = 0; y < H; y++) {
      const s0 = ((n * FH + y + offY) * FW + offX) * C
      dst.set(src.subarray(s0, s0 + rowLen), (n * H + y) * rowLen)
    }
  }
  free(backend, full)
  return out
}

/**
 * With few output channels (a last decoder layer), per-phase convolutions have 1-3 output channels and run
 * badly; instead all phases go in one Conv2D with sh*sw*C1 output channels ordered (rY, rX, c1) (phases with
 * fewer taps get zero taps), then one Transpose interleaves them.
 */
const COMBINED_MAX_CHANNELS = 24

function combinedPhases(
  backend: WasmBackend,
  dy: TensorInfo,
  filter: TensorInfo,
  p: {
    N: number
    H: number
    W: number
    C1: number
    C2: number
    sh: number
    sw: number
    kw: number
    tapsY: number[]
    tapsX: number[]
    qStartY: number
    qStartX: number
    padB: number
    padR: number
    offY: number
    offX: number
  }
): TensorInfo {
  const { N, H, W, C1, C2, sh, sw, kw, qStartY, qStartX, padB, padR, offY, offX } = p
  const Jh = Math.max(...p.tapsY)
  const Jw = Math.max(...p.tapsX)
  const P = sh * sw * C1
  // g[tY, tX, c2, (rY, rX, c1)] = f[ky, kx, c1, c2] with phase rY's taps right-aligned: phase rY has tapsY[rY]
  // taps; its tap j (ky = rY + sh*j) sits at tY = Jh - 1 - j, so every phase reads dy rows q - j alike.
  const g = backend.makeOutput([Jh, Jw, C2, P], 'float32')
  const gv = f32(backend, g)
  const fv = f32(backend, filter)
  gv.fill(0)
  for (let rY = 0; rY < sh; rY++) {
    for (let j = 0; j < p.tapsY[rY]; j++) {
      const ky = rY + sh * j
      const tY = Jh - 1 - j
      for (let rX = 0; rX < sw; rX++) {
        for (let i = 0; i < p.tapsX[rX]; i++) {
          const kx = rX + sw * i
          const tX = Jw - 1 - i
          const gBase = (tY * Jw + tX) * C2 * P + (rY * sw + rX) * C1
          const fBase = (ky * kw + kx) * C1 * C2
          for (let c1 = 0; c1 < C1; c1++) {
            for (let c2 = 0; c2 < C2; c2++) gv[gBase + c2 * P + c1] = fv[fBase + c1 * C2 + c2]
          }
        }
      }
    }
  }
  const padT = Jh - 1 - qStartY
  const padL = Jw - 1 - qStartX
  const conv = conv2d(
    backend,
    dy,
    g,
    [
      [0, 0],
      [padT, padB],
      [padL, padR],
      [0, 0]
    ],
    [1, 1]
  )
  free(backend, g)
  // [N, Mh', Mw', (rY, rX, c1)] -> [N*Mh', rY, Mw', (rX, c1)]; Mh' >= Mh when phases have different tap counts.
  const MhC = conv.shape[1]
  const MwC = conv.shape[2]
  const r4 = reshape(backend, conv, [N * MhC, MwC, sh, sw * C1])
  const full = transpose(backend, r4, [0, 2, 1, 3])
  free(backend, r4, conv)
  return crop(backend, full, [N, MhC * sh, MwC * sw, C1], H, W, offY, offX)
}

// ---------------------------------------------------------------------------------------------------------
// Conv2DBackpropFilter
// ---------------------------------------------------------------------------------------------------------

/**
 * The transposed patch matrix ([kh*kw*C, N*OH*OW]) for few taps (a first layer, C = 1..3): one strided
 * gather per tap. Multiplying it by dy gives dW in its own layout, with no transpose of the big dy.
 */
function transposedPatchMatrix(backend: WasmBackend, x: TensorInfo, info: tf.backend_util.Conv2DInfo): TensorInfo {
  const {
    batchSize: N,
    inHeight: H,
    inWidth: W,
    inChannels: C,
    outHeight: OH,
    outWidth: OW,
    filterHeight: kh,
    filterWidth: kw,
    strideHeight: sh,
    strideWidth: sw
  } = info
  const pt = info.padInfo.top
  const pl = info.padInfo.left
  const M = N * OH * OW
  const out = backend.makeOutput([kh * kw * C, M], 'float32')
  const d = f32(backend, out)
  const s = f32(backend, x)
  for (let ky = 0; ky < kh; ky++) {
    for (let kx = 0; kx < kw; kx++) {
      for (let c = 0; c < C; c++) {
        let o = ((ky * kw + kx) * C + c) * M
        for (let n = 0; n < N; n++) {
          for (let oy = 0; oy < OH; oy++) {
            const iy = oy * sh + ky - pt
            if (iy < 0 || iy >= H) {
              d.fill(0, o, o + OW)
              o += OW
              continue
            }
            const row = (n * H + iy) * W
            for (let ox = 0; ox < OW; ox++) {
              const ix = ox * sw + kx - pl
              d[o++] = ix >= 0 && ix < W ? s[(row + ix) * C + c] : 0
            }
          }
        }
      }
    }
  }
  return out
}

/** Below this many filter taps per output channel (kh*kw*C1) dW comes from the transposed patches. */
const TRANSPOSED_PATCHES_MAX_TAPS = 40

function conv2DBackpropFilter(args: Parameters<KernelFunc>[0]): TensorInfo {
  const backend = args.backend as WasmBackend
  const x = args.inputs.x as TensorInfo
  const dy = args.inputs.dy as TensorInfo
  const attrs = args.attrs ?? {}
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as {
    strides: number | [number, number]
    pad: ConvPad
    dataFormat?: 'NHWC' | 'NCHW'
    dimRoundingMode?: 'floor' | 'round' | 'ceil'
    filterShape: [number, number, number, number]
  }
  if (!isNHWC(dataFormat)) {
    throw new Error('wasm Conv2DBackpropFilter supports only NHWC')
  }
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') {
    throw new Error('wasm Conv2DBackpropFilter supports only float32')
  }
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    filterShape,
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    'channelsLast'
  )
  const {
    batchSize: N,
    inHeight: H,
    inWidth: W,
    inChannels: C1,
    outHeight: OH,
    outWidth: OW,
    outChannels: C2,
    strideHeight: sh,
    strideWidth: sw,
    filterHeight: kh,
    filterWidth: kw
  } = info
  const pt = info.padInfo.top
  const pl = info.padInfo.left
  const M = N * OH * OW
  const K = kh * kw * C1

  if (K <= TRANSPOSED_PATCHES_MAX_TAPS) {
    // Few input channels (a first layer): dW[(ky, kx, c1), c2] = patches^T[(ky, kx, c1), m] @ dy[m, c2] with
    // m = (n, oy, ox): the transposed patches are cheap to gather here, and the result is dW as it lies.
    const patchesT = transposedPatchMatrix(backend, x, info)
    const dy2 = reshape(backend, dy, [M, C2])
    const r = matMul(backend, patchesT, dy2)
    free(backend, patchesT, dy2)
    return { dataId: r.dataId, shape: [kh, kw, C1, C2], dtype: 'float32' }
  }

  // dW[ky, kx, c1, c2] = sum_{oy, ox, n} xT[c1, ky + sh*oy - pt, kx + sw*ox - pl, n] * dyT[oy, ox, n, c2]:
  // a Conv2D of xT ([C1, H, W, N]) with dyT ([OH, OW, N, C2]) as filter, dilated by the stride.
  const padB = Math.max(0, kh + (OH - 1) * sh - H - pt)
  const padR = Math.max(0, kw + (OW - 1) * sw - W - pl)
  const xT = transpose(backend, x, [3, 1, 2, 0])
  const dyT = transpose(backend, dy, [1, 2, 0, 3])
  const r = conv2d(
    backend,
    xT,
    dyT,
    [
      [0, 0],
      [pt, padB],
      [pl, padR],
      [0, 0]
    ],
    [sh, sw]
  )
  free(backend, xT, dyT)
  // r: [C1, RH, RW, C2] with RH >= kh, RW >= kw -> out [kh, kw, C1, C2].
  const RH = r.shape[1]
  const RW = r.shape[2]
  const out = backend.makeOutput([kh, kw, C1, C2], 'float32')
  {
    const src = f32(backend, r)
    const dst = f32(backend, out)
    for (let ky = 0; ky < kh; ky++) {
      for (let kx = 0; kx < kw; kx++) {
        for (let c1 = 0; c1 < C1; c1++) {
          const s0 = ((c1 * RH + ky) * RW + kx) * C2
          dst.set(src.subarray(s0, s0 + C2), ((ky * kw + kx) * C1 + c1) * C2)
        }
      }
    }
  }
  free(backend, r)
  return out
}

// ---------------------------------------------------------------------------------------------------------
// BatchMatMul / _FusedMatMul with transposes
// ---------------------------------------------------------------------------------------------------------

/** Swaps the last two axes: a Reshape (no copy) when one of them has size 1, else a Transpose. */
function swapLastTwo(backend: WasmBackend, x: TensorInfo): TensorInfo {
  const rank = x.shape.length
  const shape = x.shape.slice()
  const a = shape[rank - 2]
  const b = shape[rank - 1]
  shape[rank - 2] = b
  shape[rank - 1] = a
  if (a === 1 || b === 1) return reshape(backend, x, shape)
  const perm = Array.from({ length: rank }, (_, i) => i)
  perm[rank - 2] = rank - 1
  perm[rank - 1] = rank - 2
  return transpose(backend, x, perm)
}

/**
 * The stock wasm matmul caches its XNNPACK operator (with b packed inside) under b's tensor id, bias id and
 * activation only, not b's shape. Tensors that share data (Reshape, and the Identity/Cast below) share that
 * id, so the same b seen as [K1, N1] and later as [K2, N2] would reuse the wrong operator (out-of-bounds
 * reads, wasm aborts). Remember the [K, N] each b was first used with; if it changes, multiply by a copy.
 */
const matMulShapes = new WeakMap<tf.DataId, { id: number; kn: string }>()

function guardWeights(backend: WasmBackend, b: TensorInfo): TensorInfo | null {
  const rank = b.shape.length
  const kn = `${b.shape[rank - 2]},${b.shape[rank - 1]}`
  const id = backend.dataIdMap.get(b.dataId)?.id ?? -1
  const seen = matMulShapes.get(b.dataId)
  if (seen == null || seen.id !== id) {
    matMulShapes.set(b.dataId, { id, kn })
    return null
  }
  if (seen.kn === kn) return null
  return run(tf.Identity, backend, { x: b }) // the stock Identity: a copy with a new id
}

/**
 * XNNPACK packs the right operand (b) into its own layout every time it sees a new one; for a 400k-element
 * activation that costs as much as the multiply. With transposes on the table anyway, pick the cheaper of
 * C = A B (pack B) and C = (B^T A^T)^T (pack A^T, transpose the result). Relative costs per element, measured
 * on the wasm backend: transposing a wide matrix (rows < columns) 3, a tall one 1; packing a tall b
 * (K > N) 3, a wide one 1.5.
 */
function transposeCost(rows: number, cols: number): number {
  return rows * cols * (cols > rows ? 3 : 1)
}

function packCost(K: number, N: number): number {
  return K * N * (K > N ? 3 : 1.5)
}

function packSmallerOperand(M: number, K: number, N: number, transposeA: boolean, transposeB: boolean): boolean {
  // a is [M, K] (physically [K, M] if transposeA), b is [K, N] (physically [N, K] if transposeB).
  const direct = (transposeA ? transposeCost(K, M) : 0) + (transposeB ? transposeCost(N, K) : 0) + packCost(K, N)
  const swapped = (transposeB ? 0 : transposeCost(K, N)) + (transposeA ? 0 : transposeCost(M, K)) + packCost(K, M) + transposeCost(N, M)
  return swapped < direct
}

function makeMatMul(kernelName: string): KernelFunc {
  return (args) => {
    const attrs = args.attrs ?? {}
    const transposeA = attrs.transposeA === true
    const transposeB = attrs.transposeB === true
    const a = args.inputs.a as TensorInfo
    const b = args.inputs.b as TensorInfo
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return stockKernel(kernelName)(args)
    const backend = args.backend as WasmBackend
    const temps: TensorInfo[] = []
    const ra = a.shape.length
    const rb = b.shape.length
    const M = transposeA ? a.shape[ra - 1] : a.shape[ra - 2]
    const K = transposeA ? a.shape[ra - 2] : a.shape[ra - 1]
    const N = transposeB ? b.shape[rb - 2] : b.shape[rb - 1]
    const unbatched = tf.util.sizeFromShape(a.shape.slice(0, -2)) === 1 && tf.util.sizeFromShape(b.shape.slice(0, -2)) === 1
    if (kernelName === tf.BatchMatMul && unbatched && (transposeA || transposeB) && packSmallerOperand(M, K, N, transposeA, transposeB)) {
      // C^T [N, M] = B^T [N, K] @ A^T [K, M]; b^T is b itself when transposeB, a^T is a when transposeA.
      const bt = transposeB ? reshape(backend, b, [N, K]) : swapLastTwo(backend, reshape2d(backend, b, temps))
      const at = transposeA ? reshape(backend, a, [K, M]) : swapLastTwo(backend, reshape2d(backend, a, temps))
      temps.push(bt, at)
      const ct = matMul(backend, bt, at)
      const c = transpose(backend, ct, [1, 0])
      free(backend, ct, ...temps)
      const outShape = [...(ra >= rb ? a.shape : b.shape).slice(0, -2), M, N]
      return { dataId: c.dataId, shape: outShape, dtype: 'float32' }
    }
    let a2 = a
    let b2 = b
    if (transposeA) temps.push((a2 = swapLastTwo(backend, a)))
    if (transposeB) temps.push((b2 = swapLastTwo(backend, b)))
    const copy = guardWeights(backend, b2)
    if (copy != null) temps.push((b2 = copy))
    const out = stockKernel(kernelName)({
      inputs: { ...args.inputs, a: a2, b: b2 },
      backend,
      attrs: { ...attrs, transposeA: false, transposeB: false }
    })
    free(backend, ...temps)
    return out
  }
}

/** x viewed as 2-D (its last two axes; the leading ones have size 1); the view is added to temps. */
function reshape2d(backend: WasmBackend, x: TensorInfo, temps: TensorInfo[]): TensorInfo {
  const r = x.shape.length
  const v = reshape(backend, x, [x.shape[r - 2], x.shape[r - 1]])
  temps.push(v)
  return v
}

/** Stock BatchMatMul of 2-D a and b through the guard above (for use inside other kernels). */
function matMul(backend: WasmBackend, a: TensorInfo, b: TensorInfo): TensorInfo {
  const copy = guardWeights(backend, b)
  const out = run(tf.BatchMatMul, backend, { a, b: copy ?? b }, { transposeA: false, transposeB: false })
  if (copy != null) free(backend, copy)
  return out
}

// ---------------------------------------------------------------------------------------------------------
// Sum over leading axes
// ---------------------------------------------------------------------------------------------------------

function sum(args: Parameters<KernelFunc>[0]): TensorInfo | TensorInfo[] {
  const x = args.inputs.x as TensorInfo
  const attrs = args.attrs ?? {}
  const rank = x.shape.length
  const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape).sort((p, q) => p - q)
  // Only the case the stock kernel handles badly: float32, reducing the leading axes (k of them, k < rank).
  let leading = axes.length > 0 && axes.length < rank && x.dtype === 'float32'
  for (let i = 0; leading && i < axes.length; i++) if (axes[i] !== i) leading = false
  const size = tf.util.sizeFromShape(x.shape)
  if (!leading || size === 0) return stockKernel(tf.Sum)(args)
  const backend = args.backend as WasmBackend
  const outer = tf.util.sizeFromShape(x.shape.slice(0, axes.length))
  const inner = size / outer
  const keepDims = attrs.keepDims === true
  const outShape = keepDims ? x.shape.map((d, i) => (i < axes.length ? 1 : d)) : x.shape.slice(axes.length)
  // XNNPACK average pooling over all rows of x viewed as [1, outer, 1, inner], times outer: one pass over x,
  // ~6x faster than the stock transpose + reduce (and than ones @ x, whose weight packing is slow).
  const x4 = reshape(backend, x, [1, outer, 1, inner])
  const mean = run(tf.AvgPool, backend, { x: x4 }, { filterSize: [outer, 1], strides: [1, 1], pad: 'valid' })
  free(backend, x4)
  const mv = f32(backend, mean)
  for (let i = 0; i < inner; i++) mv[i] *= outer
  return { dataId: mean.dataId, shape: outShape, dtype: 'float32' }
}

// ---------------------------------------------------------------------------------------------------------
// Identity and same-dtype Cast without a copy
// ---------------------------------------------------------------------------------------------------------

/**
 * The stock wasm Identity (used by the engine to save tensors for the backward pass) and Cast to the same
 * dtype (in every relu gradient) copy their input. tfjs tensors are immutable and wasm kernels never write
 * into their inputs, so sharing the data (as Reshape and the cpu backend's Identity do) is safe.
 */
function identity(args: Parameters<KernelFunc>[0]): TensorInfo {
  const x = args.inputs.x as TensorInfo
  if (x.dtype === 'string') return stockKernel(tf.Identity)(args) as TensorInfo
  ;(args.backend as WasmBackend).incRef(x.dataId)
  return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype }
}

function cast(args: Parameters<KernelFunc>[0]): TensorInfo {
  const x = args.inputs.x as TensorInfo
  if (x.dtype !== (args.attrs ?? {}).dtype || x.dtype === 'string') return stockKernel(tf.Cast)(args) as TensorInfo
  ;(args.backend as WasmBackend).incRef(x.dataId)
  return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype }
}

// ---------------------------------------------------------------------------------------------------------
// UnsortedSegmentSum
// ---------------------------------------------------------------------------------------------------------

function unsortedSegmentSum(args: Parameters<KernelFunc>[0]): TensorInfo {
  const backend = args.backend as WasmBackend
  const x = args.inputs.x as TensorInfo
  const segmentIds = args.inputs.segmentIds as TensorInfo
  const numSegments = (args.attrs ?? {}).numSegments as number
  if (x.dtype !== 'float32' && x.dtype !== 'int32') {
    throw new Error(`wasm UnsortedSegmentSum does not support dtype ${x.dtype}`)
  }
  const idsRank = segmentIds.shape.length
  for (let i = 0; i < idsRank; i++) {
    if (segmentIds.shape[i] !== x.shape[i]) {
      throw new Error(`UnsortedSegmentSum: segmentIds shape ${segmentIds.shape} must be a prefix of ${x.shape}`)
    }
  }
  const numIds = tf.util.sizeFromShape(segmentIds.shape)
  const inner = numIds === 0 ? 0 : tf.util.sizeFromShape(x.shape) / numIds
  const outShape = [numSegments, ...x.shape.slice(idsRank)]
  const out = backend.makeOutput(outShape, x.dtype)
  const dst = backend.typedArrayFromHeap(out) as Float32Array | Int32Array
  const src = backend.typedArrayFromHeap(x) as Float32Array | Int32Array
  const ids = backend.typedArrayFromHeap(segmentIds) as Int32Array | Float32Array
  dst.fill(0)
  for (let i = 0; i < numIds; i++) {
    const id = ids[i]
    if (id < 0 || id >= numSegments) continue
    const s0 = i * inner
    const d0 = id * inner
    for (let j = 0; j < inner; j++) dst[d0 + j] += src[s0 + j]
  }
  return out
}

// ---------------------------------------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------------------------------------

/**
 * Registers the kernels above for the 'wasm' backend and returns their names. Idempotent. Call it before
 * training; before or after `tf.setBackend('wasm')` both work (replaced kernels keep the stock setupFunc).
 */
export function registerWasmKernels(): string[] {
  if (registered != null) return registered.slice()
  // Save the stock kernels we call or replace, before replacing anything.
  for (const name of [tf.Conv2D, tf.Transpose, tf.Reshape, tf.BatchMatMul, tf._FusedMatMul, tf.Sum, tf.Conv2DBackpropInput, tf.Identity, tf.Cast, tf.AvgPool]) {
    const config = tf.getKernel(name, BACKEND)
    if (config == null) {
      throw new Error(`registerWasmKernels: the wasm backend has no ${name} kernel; is ` + `@tensorflow/tfjs-backend-wasm loaded?`)
    }
    stock.set(name, config.kernelFunc)
  }
  const configs: tf.KernelConfig[] = [
    { kernelName: tf.Conv2DBackpropFilter, backendName: BACKEND, kernelFunc: conv2DBackpropFilter as KernelFunc },
    { kernelName: tf.Conv2DBackpropInput, backendName: BACKEND, kernelFunc: conv2DBackpropInput as KernelFunc },
    { kernelName: tf.BatchMatMul, backendName: BACKEND, kernelFunc: makeMatMul(tf.BatchMatMul) },
    { kernelName: tf._FusedMatMul, backendName: BACKEND, kernelFunc: makeMatMul(tf._FusedMatMul) },
    { kernelName: tf.Sum, backendName: BACKEND, kernelFunc: sum },
    { kernelName: tf.UnsortedSegmentSum, backendName: BACKEND, kernelFunc: unsortedSegmentSum as KernelFunc },
    { kernelName: tf.Identity, backendName: BACKEND, kernelFunc: identity as KernelFunc },
    { kernelName: tf.Cast, backendName: BACKEND, kernelFunc: cast as KernelFunc }
  ]
  const names: string[] = []
  for (const config of configs) {
    const existing = tf.getKernel(config.kernelName, BACKEND)
    if (existing != null) {
      // Keep the stock setupFunc: the stock kernelFunc we delegate to needs it when the backend initialises.
      if (existing.setupFunc != null) config.setupFunc = existing.setupFunc
      if (existing.disposeFunc != null) config.disposeFunc = existing.disposeFunc
      tf.unregisterKernel(config.kernelName, BACKEND)
    }
    tf.registerKernel(config)
    names.push(config.kernelName)
  }
  registered = names
  return names.slice()
}
