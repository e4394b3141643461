// The explorer's engine-side computations, as pure functions over a model and typed arrays:
// decoding a place of a latent space, click-to-decode on empty map space, interpolation paths,
// class grids ("side by side"), ancestral samples, KL per dimension, traversals, nearest
// neighbours and reconstruction errors. No Electron, no files: tfjs and typed arrays only.
//
// Conventions:
// - A latent block of m rows in a space of dimension dim is a Float32Array of m * dim values,
//   row-major (row i is values[i * dim .. (i + 1) * dim]), the layout the engine keeps per space.
// - A context is Record<spaceName, Float32Array> holding the other spaces' values for the rows
//   being decoded: m * dim of that space (one row per decoded row) or 1 * dim (shared by every row).
// - Images come back as ImagePayload (uint8, [h, w, c] row-major), named as the model names them:
//   `x` always, `y` too for the SRVAE.
// - Every tensor made here is disposed before returning (tf.tidy); the model is never modified.
import * as tf from '@tensorflow/tfjs'
import { readAndDispose, readOne } from '../../models/readback'
import { bytesToBase64, type ImagePayload } from '../common/contract'
import type { ImageShape, VaeFamilyModel } from '../../models/index'
import { pixelRangeTensor } from './datasets/items'

/** Rows decoded per model call: bounds memory for long paths and large grids. */
const DECODE_CHUNK = 256

/** The latents the engine holds per space: posterior means, n * dim, in item order. */
export type SpaceLatents = Map<string, { dim: number; values: Float32Array }>

// ---------------------------------------------------------------------------------------------
// Images

/** [n, h, w, c] in [0, 1] -> the same as integers 0..255 (value * 255, rounded, clipped). */
function asBytes(images: tf.Tensor4D): tf.Tensor4D {
  return images.mul(255).round().clipByValue(0, 255).toInt() as tf.Tensor4D
}

function payloadsOf(bytes: ArrayLike<number> & { subarray(from: number, to: number): ArrayLike<number> }, shape: number[]): ImagePayload[] {
  const [n, height, width, channels] = shape
  const k = height * width * channels
  const out: ImagePayload[] = []
  for (let i = 0; i < n; i++) {
    out.push({ width, height, channels, base64: bytesToBase64(Uint8Array.from(bytes.subarray(i * k, (i + 1) * k))) })
  }
  return out
}

/** [n, h, w, c] in [0, 1] -> one uint8 payload per item. Reads the tensor back once; does not dispose it. */
/** The first image of a batch (a batch of one, usually) as a payload. */
export async function toImagePayload(images: tf.Tensor4D): Promise<ImagePayload> {
  const [first] = await toImagePayloads(images)
  if (!first) throw new Error('nothing was decoded (an empty batch)')
  return first
}

export async function toImagePayloads(images: tf.Tensor4D): Promise<ImagePayload[]> {
  const bytes = await readOne<Int32Array>(tf.tidy(() => asBytes(images)))
  return payloadsOf(bytes, images.shape)
}

/**
 * Payloads of every named image that `decode` makes, {name: [n]}; every tensor it makes is
 * disposed. The read is asynchronous (models/readback.ts says why), so decode runs in a tf.tidy.
 */
async function decodedPayloads(decode: () => Record<string, tf.Tensor4D>): Promise<Record<string, ImagePayload[]>> {
  const shapes: Record<string, number[]> = {}
  const bytes = tf.tidy(() => {
    const out: Record<string, tf.Tensor> = {}
    for (const [name, images] of Object.entries(decode())) {
      shapes[name] = images.shape
      out[name] = asBytes(images)
    }
    return out
  })
  const read = await readAndDispose(bytes)
  return Object.fromEntries(Object.entries(read).map(([name, values]) => [name, payloadsOf(values, shapes[name])]))
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** The dimension of a space of the model; throws a clear error for an unknown name. */
export function spaceDim(model: Pick<VaeFamilyModel, 'spaces'>, space: string): number {
  const info = model.spaces.find((s) => s.name === space)
  if (!info) throw new Error(`the model has no latent space "${space}" (it has ${model.spaces.map((s) => s.name).join(', ')})`)
  return info.dim
}

function rowCount(values: Float32Array, dim: number, what: string): number {
  if (dim <= 0 || values.length % dim !== 0 || values.length === 0) {
    throw new Error(`${what}: expected a non-empty multiple of ${dim} values, got ${values.length}`)
  }
  return values.length / dim
}

/**
 * Decodes m latents of one space into every image the model names (x; for the SRVAE also y).
 *
 * `latents` is m * dim of `space`. `context` carries the other spaces the decoder needs, per row
 * (m * dim of that space) or shared (1 * dim): for the SRVAE z space it must carry `y` (models.md,
 * "Decoding from one space"; the model throws otherwise); for the CDVAE z_l it should carry z_u
 * (else the prior mean 0) and for z_u it should carry z_l (else the centre of the class means).
 * Spaces the model fills itself (SRVAE from u or y) ignore the context.
 *
 * Returns {name: m payloads}, row order kept.
 */
export async function decodeInSpace(
  model: VaeFamilyModel,
  space: string,
  latents: Float32Array,
  context: Record<string, Float32Array> = {}
): Promise<Record<string, ImagePayload[]>> {
  const dim = spaceDim(model, space)
  const m = rowCount(latents, dim, `latents of "${space}"`)
  const contextDims: Record<string, number> = {}
  for (const [name, values] of Object.entries(context)) {
    const d = spaceDim(model, name)
    if (values.length !== d && values.length !== m * d) {
      throw new Error(`context "${name}" must hold ${d} (shared) or ${m} x ${d} values, got ${values.length}`)
    }
    contextDims[name] = d
  }
  const out: Record<string, ImagePayload[]> = {}
  for (let from = 0; from < m; from += DECODE_CHUNK) {
    const count = Math.min(DECODE_CHUNK, m - from)
    const chunk = await decodedPayloads(() => {
      const z = tf.tensor2d(latents.subarray(from * dim, (from + count) * dim), [count, dim])
      const ctx: Record<string, tf.Tensor2D> = {}
      for (const [name, values] of Object.entries(context)) {
        const d = contextDims[name]
        ctx[name] =
          values.length === d && m * d !== d
            ? tf.tensor2d(values, [1, d]).tile([count, 1])
            : tf.tensor2d(values.subarray(from * d, (from + count) * d), [count, d])
      }
      return model.decode(space, z, ctx)
    })
    for (const [name, payloads] of Object.entries(chunk)) (out[name] ??= []).push(...payloads)
  }
  return out
}

/**
 * The other spaces' values to use when decoding a point of `space` that was built from items
 * (a click on empty map space, see latentAtMapPoint): for every other space in `latents`, the
 * weighted average of those items' values, 1 * dim. Weights are normalised here (they need only
 * be non-negative with a positive sum). So "decode this place of the SRVAE z map" uses a y made
 * from the same neighbours, and a CDVAE z_l place gets its neighbours' mean z_u.
 * Pass the result as decodeInSpace's context; spaces a decode does not need are ignored by it.
 */
export function contextFor(
  model: Pick<VaeFamilyModel, 'spaces'>,
  space: string,
  itemIndices: number[],
  weights: number[],
  latents: SpaceLatents
): Record<string, Float32Array> {
  spaceDim(model, space)
  if (itemIndices.length === 0 || itemIndices.length !== weights.length) {
    throw new Error(`contextFor needs one weight per item (got ${itemIndices.length} items, ${weights.length} weights)`)
  }
  const total = weights.reduce((s, w) => s + w, 0)
  if (!(total > 0) || weights.some((w) => w < 0 || !Number.isFinite(w))) {
    throw new Error('contextFor: weights must be finite, non-negative, with a positive sum')
  }
  const out: Record<string, Float32Array> = {}
  for (const info of model.spaces) {
    if (info.name === space) continue
    const held = latents.get(info.name)
    if (!held) continue
    out[info.name] = weightedRowMean(
      held.values,
      held.dim,
      itemIndices,
      weights.map((w) => w / total)
    )
  }
  return out
}

function weightedRowMean(values: Float32Array, dim: number, rows: number[], weights: number[]): Float32Array {
  const n = values.length / dim
  const acc = new Float64Array(dim)
  rows.forEach((row, j) => {
    if (!Number.isInteger(row) || row < 0 || row >= n) throw new Error(`there is no item ${row}; there are ${n}`)
    const w = weights[j]
    for (let d = 0; d < dim; d++) acc[d] += w * values[row * dim + d]
  })
  return Float32Array.from(acc)
}

// ---------------------------------------------------------------------------------------------
// Neighbours

/**
 * Exact k nearest rows of `values` (n * dim) to `query` by Euclidean distance, nearest first,
 * ties broken by the lower index; rows with non-finite coordinates are skipped.
 */
function kNearest(values: Float32Array, dim: number, query: ArrayLike<number>, k: number, exclude = -1): { index: number[]; d2: number[] } {
  const n = values.length / dim
  const index: number[] = []
  const d2: number[] = []
  if (k <= 0) return { index, d2 }
  for (let i = 0; i < n; i++) {
    if (i === exclude) continue
    let s = 0
    const base = i * dim
    for (let d = 0; d < dim; d++) {
      const diff = values[base + d] - query[d]
      s += diff * diff
    }
    if (!Number.isFinite(s)) continue
    if (index.length === k && s >= d2[k - 1]) continue
    // Insert after every entry at the same or a smaller distance (keeps ties in index order).
    let at = index.length
    while (at > 0 && d2[at - 1] > s) at--
    index.splice(at, 0, i)
    d2.splice(at, 0, s)
    if (index.length > k) {
      index.pop()
      d2.pop()
    }
  }
  return { index, d2 }
}

/**
 * The exact k nearest items to item `index` in a latent space (Euclidean distance between
 * posterior means), nearest first, the item itself excluded, ties by lower index.
 * Brute force: 70k x 16 takes a few milliseconds.
 */
export function nearestNeighbours(latents: Float32Array, dim: number, index: number, k: number): number[] {
  const n = rowCount(latents, dim, 'latents')
  if (!Number.isInteger(index) || index < 0 || index >= n) throw new Error(`there is no item ${index}; there are ${n}`)
  return kNearest(latents, dim, latents.subarray(index * dim, (index + 1) * dim), Math.min(k, n - 1), index).index
}

/**
 * Click-to-decode on empty map space: the latent of a 3D point of a map, as the inverse-distance
 * weighted mean of the latents of the k nearest embedded items (in 3D): weight_i ∝ 1 / d_i^2,
 * normalised to sum to 1. A point exactly on items (d = 0) returns their mean (one item: its
 * latent exactly). UI wording: "inverse-distance weighted mean of the 8 nearest items' latents".
 *
 * `mapPositions` is n * 3, `latents` n * dim, both in item order. Returns the latent (1 * dim),
 * the neighbours (item indices, nearest first) and their weights (same order, summing to 1):
 * pass neighbours and weights to contextFor for the other spaces.
 */
export function latentAtMapPoint(
  mapPositions: Float32Array,
  latents: Float32Array,
  dim: number,
  point: [number, number, number],
  k = 8
): { latent: Float32Array; neighbours: number[]; weights: number[] } {
  const n = rowCount(mapPositions, 3, 'map positions')
  if (latents.length !== n * dim) throw new Error(`latents must hold ${n} x ${dim} values (one row per mapped item), got ${latents.length}`)
  const { index, d2 } = kNearest(mapPositions, 3, point, Math.min(Math.max(1, k), n))
  if (index.length === 0) throw new Error('the map has no finite positions yet')
  // Exact hits (distance 0, up to float noise far below any map's spacing) take all the weight.
  const scale = 1 + point[0] ** 2 + point[1] ** 2 + point[2] ** 2
  const exact = d2.map((s) => s <= 1e-14 * scale)
  const raw = exact.some(Boolean) ? exact.map((e) => (e ? 1 : 0)) : d2.map((s) => 1 / s)
  const total = raw.reduce((s, w) => s + w, 0)
  const weights = raw.map((w) => w / total)
  return { latent: weightedRowMean(latents, dim, index, weights), neighbours: index, weights }
}

// ---------------------------------------------------------------------------------------------
// Interpolation

/**
 * A path of `steps` rows (steps * dim values) from a to b; the first row is a and the last is b
 * exactly. 'linear': a + t (b - a), t = i / (steps - 1). 'spherical': slerp of the directions
 * with the norm interpolated linearly, |v(t)| = (1 - t)|a| + t|b| (the usual slerp for VAE
 * latents, which keeps the path in the shell where prior mass lies); it falls back to linear when
 * a or b is (nearly) zero or they are (nearly) parallel or opposite, where the great circle is
 * degenerate or undefined.
 */
export function interpolatePath(a: Float32Array, b: Float32Array, steps: number, mode: 'linear' | 'spherical'): Float32Array {
  const dim = a.length
  if (b.length !== dim || dim === 0) throw new Error(`interpolation ends must have the same non-zero length (${a.length}, ${b.length})`)
  if (!Number.isInteger(steps) || steps < 2) throw new Error(`an interpolation needs at least 2 steps, got ${steps}`)
  const out = new Float32Array(steps * dim)
  let normA = 0
  let normB = 0
  let dot = 0
  for (let d = 0; d < dim; d++) {
    normA += a[d] * a[d]
    normB += b[d] * b[d]
    dot += a[d] * b[d]
  }
  normA = Math.sqrt(normA)
  normB = Math.sqrt(normB)
  const cos = normA > 1e-8 && normB > 1e-8 ? Math.min(1, Math.max(-1, dot / (normA * normB))) : 1
  const omega = Math.acos(cos)
  const sinOmega = Math.sin(omega)
  const spherical = mode === 'spherical' && sinOmega > 1e-4
  for (let i = 0; i < steps; i++) {
    const row = out.subarray(i * dim, (i + 1) * dim)
    if (i === 0) row.set(a)
    else if (i === steps - 1) row.set(b)
    else {
      const t = i / (steps - 1)
      if (spherical) {
        const norm = (1 - t) * normA + t * normB
        const wa = (Math.sin((1 - t) * omega) / sinOmega / normA) * norm
        const wb = (Math.sin(t * omega) / sinOmega / normB) * norm
        for (let d = 0; d < dim; d++) row[d] = wa * a[d] + wb * b[d]
      } else {
        for (let d = 0; d < dim; d++) row[d] = a[d] + t * (b[d] - a[d])
      }
    }
  }
  return out
}

/**
 * Linear interpolation of contexts alongside a path: for every space present in both, steps rows
 * from a's value to b's (1 * dim each). For the SRVAE z space, interpolate y with this while z
 * follows interpolatePath, then pass the result as decodeInSpace's (per-row) context.
 */
export function interpolateContext(a: Record<string, Float32Array>, b: Record<string, Float32Array>, steps: number): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {}
  for (const [name, va] of Object.entries(a)) {
    const vb = b[name]
    if (vb) out[name] = interpolatePath(va, vb, steps, 'linear')
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Generation

/** The spaces that draw standard-normal noise when sampling (not image spaces such as the SRVAE's y). */
function noiseSpaces(model: VaeFamilyModel): { name: string; dim: number }[] {
  return model.spaces.filter((s) => !s.isImage).map((s) => ({ name: s.name, dim: s.dim }))
}

export interface ClassGridOptions {
  /** Rows of the grid; each row shares one standard-normal draw per space across all classes. */
  rows: number
  /** Scales the standard deviation of every prior draw. */
  temperature: number
  /** Seed of the rows' noise: the same seed gives the same grid. */
  seed: number
  /**
   * A real item's encoded values per space (1 * dim each): "this item as every class". The free
   * space (model.freeSpace, CDVAE z_u) is fixed to the item's value; row 0 takes the class-prior
   * MEAN in the conditional space (temperature 0) and rows 1.. add temperature-scaled draws
   * shared by every class, i.e. variations of the class around its mean with the item's style.
   */
  fromItem?: Record<string, Float32Array>
}

export interface ClassGrid {
  classes: number
  rows: number
  /** x, [row][class]. */
  images: ImagePayload[][]
  /** The generated low-resolution y beside x (SRVAE only), [row][class]. */
  yImages?: ImagePayload[][]
  /** The standard-normal noise each row used, per space, rows * dim (row r is shared by every class). */
  noise: Record<string, Float32Array>
}

/**
 * Conditional generation side by side (models.md, CDVAE "side by side"): one column per class,
 * one row per shared draw. Class c of row r is model.sample with classIndex c, `temperature` and
 * the row's noise in every space, so a row shows one style in every class. Works for any model
 * with a class-conditional prior (CDVAE; VAE or SRVAE trained with conditionalPrior); throws a
 * clear error otherwise. See ClassGridOptions.fromItem for "this item as every class" (needs a
 * model with a free space, i.e. the CDVAE).
 */
export async function classGrid(model: VaeFamilyModel, options: ClassGridOptions): Promise<ClassGrid> {
  const conditional = model.conditionalSpace
  if (conditional === null) {
    throw new Error('this model has no class-conditional prior: a class grid needs a CDVAE, or a VAE/SRVAE trained with a conditional prior on labelled data')
  }
  const classes = model.config.numClasses
  const { rows, temperature, seed, fromItem } = options
  if (!Number.isInteger(rows) || rows < 1) throw new Error(`a class grid needs at least one row, got ${rows}`)
  let fixedSpace: string | null = null
  let fixedValue: Float32Array | null = null
  if (fromItem) {
    fixedSpace = model.freeSpace
    if (fixedSpace === null) throw new Error('"this item as every class" needs a model with a free latent space (the CDVAE\'s z_u)')
    fixedValue = fromItem[fixedSpace] ?? null
    const d = spaceDim(model, fixedSpace)
    if (!fixedValue || fixedValue.length !== d) throw new Error(`fromItem must carry the item's ${fixedSpace} (${d} values)`)
  }
  const noise: Record<string, Float32Array> = {}
  for (const [i, { name, dim }] of noiseSpaces(model).entries()) {
    if (name === fixedSpace) continue
    const values = Float32Array.from(await readOne(tf.randomNormal([rows, dim], 0, 1, 'float32', seed * 7919 + 101 * i + 17)))
    // With an item, row 0 is the class mean: zero noise in every drawn space.
    if (fromItem) values.fill(0, 0, dim)
    noise[name] = values
  }
  const images: ImagePayload[][] = Array.from({ length: rows }, () => [])
  let yImages: ImagePayload[][] | undefined
  for (let c = 0; c < classes; c++) {
    const decoded = await decodedPayloads(() => {
      const noiseTensors: Record<string, tf.Tensor2D> = {}
      for (const [name, values] of Object.entries(noise)) noiseTensors[name] = tf.tensor2d(values, [rows, values.length / rows])
      const fixed: Record<string, tf.Tensor2D> = {}
      if (fixedSpace && fixedValue) fixed[fixedSpace] = tf.tensor2d(fixedValue, [1, fixedValue.length]).tile([rows, 1])
      return model.sample(rows, { classIndex: c, temperature, noise: noiseTensors, fixed })
    })
    for (let r = 0; r < rows; r++) {
      images[r].push(decoded.x[r])
      if (decoded.y) (yImages ??= Array.from({ length: rows }, () => []))[r].push(decoded.y[r])
    }
  }
  return { classes, rows, images, ...(yImages ? { yImages } : {}), noise }
}

/**
 * n unconditional ancestral samples at `temperature` (SRVAE: u ~ p(u), y = y_hat(u),
 * z ~ p(z|y,u), x; returns x and y). With classIndex, samples p(. | c) on a conditional model.
 * Models with a class prior and no class: the VAE/SRVAE draw N(0, I); the CDVAE uses the centre
 * of the class means for z_l. Returns {name: n payloads}.
 */
export async function ancestralSamples(
  model: VaeFamilyModel,
  n: number,
  temperature: number,
  seed: number,
  classIndex?: number
): Promise<Record<string, ImagePayload[]>> {
  if (!Number.isInteger(n) || n < 1) throw new Error(`ask for at least one sample, got ${n}`)
  return decodedPayloads(() => model.sample(n, { temperature, seed, ...(classIndex === undefined ? {} : { classIndex }) }) as Record<string, tf.Tensor4D>)
}

// ---------------------------------------------------------------------------------------------
// Dimensions and traversals

/**
 * Per space, the mean over the items of x of KL(q(z_d | x) || N(0, 1)) for each latent dimension
 * d: 1/2 (mu_d^2 + s2_d - 1 - log s2_d). Dimensions the model does not use sit near 0 (collapsed
 * to the prior); sort descending (informativeOrder) for traversals "informative first". Uses
 * model.posteriors, so the SRVAE's y (deterministic) has no entry. For the SRVAE z and the CDVAE
 * z_l the training KL is to a learned prior; this is still to N(0, 1), a common yardstick.
 */
export async function klPerDimension(model: Pick<VaeFamilyModel, 'posteriors'>, x: tf.Tensor4D, batchSize = 256): Promise<Record<string, Float32Array>> {
  const n = x.shape[0]
  if (n === 0) throw new Error('klPerDimension needs at least one item')
  const sums: Record<string, Float64Array> = {}
  for (let from = 0; from < n; from += batchSize) {
    const count = Math.min(batchSize, n - from)
    const partial = await readAndDispose(
      tf.tidy(() => {
        const batch = x.slice([from, 0, 0, 0], [count, -1, -1, -1])
        const out: Record<string, tf.Tensor> = {}
        for (const [name, { mu, logvar }] of Object.entries(model.posteriors(batch))) {
          out[name] = mu.square().add(logvar.exp()).sub(1).sub(logvar).mul(0.5).sum(0)
        }
        return out
      })
    )
    for (const [name, values] of Object.entries(partial)) {
      const acc = (sums[name] ??= new Float64Array(values.length))
      for (let d = 0; d < values.length; d++) acc[d] += values[d]
    }
  }
  const out: Record<string, Float32Array> = {}
  for (const [name, acc] of Object.entries(sums)) out[name] = Float32Array.from(acc, (v) => v / n)
  return out
}

/** Dimension indices sorted by decreasing KL (most informative first; ties by index). */
export function informativeOrder(klPerDim: Float32Array): number[] {
  return Array.from(klPerDim.keys()).sort((i, j) => klPerDim[j] - klPerDim[i] || i - j)
}

export interface TraversalOptions {
  /** 'set' (default): the dimension takes each value; 'offset': the item's value plus each value. */
  mode?: 'set' | 'offset'
  /** Which named image to return (default x; the SRVAE also has y). */
  image?: string
}

/**
 * Latent traversal, [dimension][value]: each row varies ONE dimension of the item's latent
 * (1 * dim of `space`) over `values`, holding every other dimension and the context (as in
 * decodeInSpace, usually shared 1 * dim values such as the item's y for the SRVAE z space).
 * With mode 'set' (default) dimension d takes each value: for a standard-normal prior, -3..3 are
 * prior standard deviations. For a class-prior space use mode 'offset' (the item's value plus
 * multiples of 1).
 */
export async function traversalGrid(
  model: VaeFamilyModel,
  space: string,
  itemLatent: Float32Array,
  context: Record<string, Float32Array> | undefined,
  dimensions: number[],
  values: number[],
  options: TraversalOptions = {}
): Promise<ImagePayload[][]> {
  const dim = spaceDim(model, space)
  if (itemLatent.length !== dim) throw new Error(`the item's latent must hold ${dim} values, got ${itemLatent.length}`)
  for (const d of dimensions) if (!Number.isInteger(d) || d < 0 || d >= dim) throw new Error(`"${space}" has no dimension ${d}`)
  if (dimensions.length === 0 || values.length === 0) return dimensions.map(() => [])
  const offset = options.mode === 'offset'
  const latents = new Float32Array(dimensions.length * values.length * dim)
  dimensions.forEach((d, i) => {
    values.forEach((v, j) => {
      const row = (i * values.length + j) * dim
      latents.set(itemLatent, row)
      latents[row + d] = offset ? itemLatent[d] + v : v
    })
  })
  const name = options.image ?? 'x'
  const decoded = (await decodeInSpace(model, space, latents, context))[name]
  if (!decoded) throw new Error(`decoding "${space}" gives no image "${name}"`)
  return dimensions.map((_, i) => decoded.slice(i * values.length, (i + 1) * values.length))
}

// ---------------------------------------------------------------------------------------------
// Reconstruction error

async function reconstructionErrorBatch(
  model: VaeFamilyModel,
  pixels: Uint8Array,
  shape: ImageShape,
  from: number,
  count: number,
  out: Float32Array
): Promise<void> {
  const k = shape.height * shape.width * shape.channels
  const errors = await readOne(
    tf.tidy(() => {
      const x = pixelRangeTensor(pixels, shape, from, count)
      return x.sub(model.reconstruct(x).x).square().reshape([count, k]).mean(1)
    })
  )
  out.set(errors, from)
}

function pixelItems(pixels: Uint8Array, shape: ImageShape): number {
  const k = shape.height * shape.width * shape.channels
  if (k === 0 || pixels.length % k !== 0)
    throw new Error(`pixels (${pixels.length} bytes) are not a whole number of ${shape.width}x${shape.height}x${shape.channels} images`)
  return pixels.length / k
}

/**
 * Per item, the mean squared error over pixels (values in [0, 1]) between x and its
 * reconstruction through the posterior means (model.reconstruct(x).x), for colouring the map.
 * `pixels` is n * h * w * c uint8 in item order (the dataset's layout). Yields to the event loop
 * between batches and reports progress.
 */
export async function reconstructionErrors(
  model: VaeFamilyModel,
  pixels: Uint8Array,
  shape: ImageShape,
  batchSize = 256,
  onProgress?: (done: number, total: number) => void,
  signal?: AbortSignal
): Promise<Float32Array> {
  const n = pixelItems(pixels, shape)
  const out = new Float32Array(n)
  for (let from = 0; from < n; from += batchSize) {
    signal?.throwIfAborted()
    const count = Math.min(batchSize, n - from)
    await reconstructionErrorBatch(model, pixels, shape, from, count, out)
    onProgress?.(from + count, n)
    await new Promise((resolve) => setTimeout(resolve, 0))
  }
  return out
}
