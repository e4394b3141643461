// The model open in the window and what the window has made of it: its run folder, its trainer
// while it trains, every item's latents, the maps and their projections, pinned points, the
// curves so far and the metrics; and what the explorer asks of it (decode a place on a map,
// interpolate, the class grid, traversals, exports). The engine routes requests here and reports
// status; the dataset is the one the model was opened with (a new dataset closes the model).
import type { VaeFamilyModel } from '../../models/index'
import type { ModelMetrics } from '../../models/metrics'
import type { EpochSummary, StepProgress, Trainer } from '../../models/train'
import {
  bytesToBase64,
  DEFAULT_PROJECTION,
  float32ToBase64,
  int32ToBase64,
  type ClassGridResult,
  type ExportFormatName,
  type InterpolationResult,
  type MapData,
  type PathEnd,
  type PinnedPoint,
  type ProjectionSettings,
  type RequestArgs,
  type TraversalResult
} from '../common/contract'
import { itemsTensor } from './datasets/items'
import type { ImageDataset } from './datasets/types'
import { classGrid, contextFor, decodeInSpace, interpolateContext, interpolatePath, klPerDimension, latentAtMapPoint, traversalGrid } from './explorer'
import { writeExports } from './exports'
import type { LatentProjection } from './projection/index'
import type { Latents, RunFolder } from './run/folder'

const POINT_DECODE_NEIGHBOURS = 8
const POINT_DECODE_METHOD = `inverse-distance weighted mean (weights 1/d²) of the latents of the ${POINT_DECODE_NEIGHBOURS} items nearest to the clicked place on the map`

export class OpenModel {
  /** Posterior means per space, n * dim, in item order. */
  latents: Latents = new Map()
  /** weightsDigest of the weights that encoded `latents` (null before the first encoding). */
  latentsWeights: string | null = null
  /** Positions per space, n * 3 (z = 0 on a 2D map), and how many dimensions the map has. */
  readonly maps = new Map<string, { positions: Float32Array; dimensions: 2 | 3 }>()
  /** The fitted projection per space (its transform places interpolation paths). */
  readonly projections = new Map<string, LatentProjection>()
  /** Per-item mean squared reconstruction error, once computed. */
  reconstructionErrors: Float32Array | null = null
  /** Points pinned on a map: their values in every space. */
  private readonly pins = new Map<number, { space: string; values: Record<string, Float32Array> }>()
  private nextPin = 1
  projecting = false
  projectionSettings: ProjectionSettings = { ...DEFAULT_PROJECTION }
  /** What the model learned (health, 5-NN class accuracy, warnings), once measured. */
  metrics: ModelMetrics | null = null
  /** The curves so far, for a window that re-attaches: every step's terms and each epoch. */
  steps: { step: number; terms: Record<string, number> }[] = []
  epochs: (EpochSummary & { step: number })[] = []
  lastStep: StepProgress | null = null
  /** Aborted when the model is closed or its training cancelled: encoding and mapping stop. */
  readonly abort = new AbortController()

  constructor(
    readonly runId: string,
    readonly folder: RunFolder,
    readonly model: VaeFamilyModel,
    /** Set while the model trains. */
    public trainer: Trainer | null,
    readonly dataset: ImageDataset
  ) {}

  requireLatents(space: string): { dim: number; values: Float32Array } {
    const latents = this.latents.get(space)
    if (!latents) throw new Error(`no encoded items in "${space}" yet: wait for the maps`)
    return latents
  }

  /** An item's (or a pin's) value in every space. */
  endValues(end: PathEnd): Record<string, Float32Array> {
    if ('pin' in end) {
      const pin = this.pins.get(end.pin)
      if (!pin) throw new Error(`there is no pinned point ${end.pin}`)
      return pin.values
    }
    const values: Record<string, Float32Array> = {}
    for (const [name, { dim, values: all }] of this.latents) {
      if (end.item * dim >= all.length) throw new Error(`there is no item ${end.item}`)
      values[name] = all.slice(end.item * dim, (end.item + 1) * dim)
    }
    return values
  }

  async decodePoint(space: string, position: [number, number, number]): Promise<PinnedPoint> {
    const map = this.maps.get(space)
    const latents = this.requireLatents(space)
    if (!map) throw new Error(`no map of "${space}" yet`)
    const { latent, neighbours, weights } = latentAtMapPoint(map.positions, latents.values, latents.dim, position, POINT_DECODE_NEIGHBOURS)
    const context = contextFor(this.model, space, neighbours, weights, this.latents)
    const decoded = await decodeInSpace(this.model, space, latent, context)
    const id = this.nextPin++
    this.pins.set(id, { space, values: { ...context, [space]: latent } })
    return {
      id,
      space,
      position,
      neighbours,
      images: Object.entries(decoded).map(([name, images]) => ({ name: name === 'x' ? 'decoded' : name, image: firstOf(images, `the decoded ${name}`) })),
      method: POINT_DECODE_METHOD
    }
  }

  async interpolate(args: RequestArgs<'interpolate'>): Promise<InterpolationResult> {
    this.requireLatents(args.space)
    const a = this.endValues(args.from)
    const b = this.endValues(args.to)
    const path = interpolatePath(valueIn(a, args.space), valueIn(b, args.space), args.steps, args.mode)
    // The other spaces move linearly alongside (the SRVAE's z needs its y, the CDVAE's z_l its
    // z_u), so that the path's ends decode exactly as its two end items do.
    const others = (values: Record<string, Float32Array>) => Object.fromEntries(Object.entries(values).filter(([name]) => name !== args.space))
    const context = interpolateContext(others(a), others(b), args.steps)
    const decoded = await decodeInSpace(this.model, args.space, path, context)
    const projection = this.projections.get(args.space)
    const placed = projection ? toThreeD(projection.transform(path), projection.nComponents) : new Float32Array(args.steps * 3)
    return {
      space: args.space,
      mode: args.mode,
      strips: Object.entries(decoded).map(([name, images]) => ({ name, images })),
      pathBase64: float32ToBase64(placed)
    }
  }

  async generateGrid(args: RequestArgs<'generate.grid'>): Promise<ClassGridResult> {
    const model = this.model
    if (!model.conditionalSpace)
      throw new Error('this model has no class-conditional prior: train a CDVAE, or a VAE/SRVAE with "class prior" ticked, on labelled data')
    const fromItem = args.fromItem === undefined ? undefined : this.endValues({ item: args.fromItem })
    const grid = await classGrid(model, { rows: args.rows, temperature: args.temperature, seed: args.seed, fromItem })
    return {
      classNames: this.dataset.classNames,
      rows: grid.rows,
      images: grid.images,
      yImages: grid.yImages ?? null,
      space: model.conditionalSpace,
      freeSpace: model.freeSpace
    }
  }

  async traverse(args: RequestArgs<'traverse'>): Promise<TraversalResult> {
    const dataset = this.dataset
    const space = this.model.spaces.find((s) => s.name === args.space)
    if (!space) throw new Error(`the model has no space "${args.space}"`)
    if (space.isImage) throw new Error(`"${args.space}" is an image space: traverse u or z instead`)
    const item = this.endValues({ item: args.index })
    // Informative dimensions first: by the model's own KL per dimension (to its prior, p(z_l|c) for
    // the CDVAE) on the held-out items, once measured; else by the KL to N(0, 1) of (up to) 500
    // training items.
    const measured = this.metrics?.health[args.space]?.klPerDim
    const sample = Array.from(dataset.split.keys())
      .filter((i) => dataset.split[i] === 0)
      .slice(0, 500)
    const kl = measured ? Float32Array.from(measured) : await this.sampleKlPerDimension(sample, args.space)
    const dimensions = Array.from(kl, (value, index) => ({ index, kl: value }))
      .sort((p, q) => q.kl - p.kl)
      .slice(0, args.dimensions)
    const values = Array.from({ length: args.steps }, (_, i) => -args.span + (2 * args.span * i) / (args.steps - 1))
    const context = Object.fromEntries(Object.entries(item).filter(([name]) => name !== args.space))
    // Under a class prior a dimension moves around the item's own value; under N(0, I) it is set.
    const mode = args.space === this.model.conditionalSpace ? 'offset' : 'set'
    const images = await traversalGrid(
      this.model,
      args.space,
      valueIn(item, args.space),
      context,
      dimensions.map((d) => d.index),
      values,
      { mode }
    )
    return { space: args.space, dimensions, values, images }
  }

  /**
   * The open model's latents (and the maps made so far, and the model) in the chosen formats, into
   * exports/ of its own run folder (the app writes nowhere the user did not give it); for `items`
   * (a selection on a map), those items alone into exports/selection-<date and time>/.
   */
  async export(formats: ExportFormatName[], items?: Int32Array): Promise<{ dir: string; files: string[] }> {
    const dataset = this.dataset
    if (this.latents.size === 0) throw new Error('the items are not encoded yet: export once the maps are being made')
    const maps = new Map<string, { components: number; values: Float32Array }>()
    for (const [space, { positions, dimensions }] of this.maps) {
      maps.set(space, { components: dimensions, values: dimensions === 3 ? positions : positions.filter((_, i) => i % 3 !== 2) })
    }
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)
    const dir = this.folder.exportsDir(items ? `selection-${stamp}` : undefined)
    const model = formats.includes('model') ? { model: this.model, runJson: await this.folder.recordText() } : undefined
    const files = await writeExports(dir, { dataset, latents: this.latents, maps, model, items }, formats)
    return { dir, files }
  }

  /** KL per dimension of one space (to N(0, 1)) over some items, for a model not yet measured. */
  private async sampleKlPerDimension(items: number[], space: string): Promise<Float32Array> {
    const x = itemsTensor(this.dataset, items)
    try {
      const kl = (await klPerDimension(this.model, x))[space]
      if (!kl) throw new Error(`"${space}" has no posterior to measure`)
      return kl
    } finally {
      x.dispose()
    }
  }

  mapData(space: string, final: boolean): MapData {
    const dataset = this.dataset
    const map = this.maps.get(space)
    if (!map) throw new Error(`no map of "${space}" yet`)
    const labels = dataset.labels ?? new Int32Array(dataset.split.length).fill(-1)
    const errors = this.reconstructionErrors
    return {
      space,
      dimensions: map.dimensions,
      ...(errors ? { reconstructionErrorBase64: float32ToBase64(errors) } : {}),
      positionsBase64: float32ToBase64(map.positions),
      labelsBase64: int32ToBase64(labels),
      splitBase64: bytesToBase64(dataset.split),
      count: dataset.split.length,
      final
    }
  }

  /** Stops its encoding and mapping, releases the model and (cancelling it first) the trainer. */
  dispose(): void {
    this.abort.abort(new Error('replaced'))
    this.model.dispose()
    // Trainer.dispose also cancels a run in progress and stops a parallel trainer's workers.
    this.trainer?.dispose()
  }
}

/** The maps are drawn in 3D: a 2D embedding gets a zero third coordinate. */
export function toThreeD(embedding: Float32Array, components: 2 | 3): Float32Array {
  if (components === 3) return embedding
  const n = embedding.length / 2
  const out = new Float32Array(n * 3)
  for (let i = 0; i < n; i++) {
    out[i * 3] = embedding[i * 2] ?? 0
    out[i * 3 + 1] = embedding[i * 2 + 1] ?? 0
  }
  return out
}

/** A space's value in a record of every space's (an item's or a pin's); throws when the model has no such space. */
function valueIn(values: Record<string, Float32Array>, space: string): Float32Array {
  const value = values[space]
  if (!value) throw new Error(`no values in "${space}" (the model's spaces: ${Object.keys(values).join(', ')})`)
  return value
}

/** The first element of a non-empty list. */
function firstOf<T>(list: readonly T[], what: string): T {
  const [first] = list
  if (first === undefined) throw new Error(`${what} is empty`)
  return first
}
