// The one contract between the renderer and the engine: every request (name, argument type,
// result type) and every event. The renderer, the preload, the Electron main process, the
// browser-mode host and the engine all import this module; no channel name is restated elsewhere.
//
// Every message is plain JSON (binary arrays travel as base64) so that the same messages cross
// Electron IPC, a child-process channel and a WebSocket unchanged.

import type { EpochSummary, LatentHealth, StepProgress } from '../../models/train'
import type { ModelMetrics } from '../../models/metrics'
import type { LatentShare } from '../../models/latent-size'

export type { LatentHealth, ModelMetrics }

export type ModelFamilyName = 'vae' | 'srvae' | 'cdvae'

/** What loading a dataset found: its layout, classes, resolution, and every file skipped with why. */
export interface SkippedFile {
  /** Path of the file (or folder) that was skipped, as given to the loader. */
  path: string
  /** Why it was skipped, in words a user can act on ("not an image: ...", "zero bytes"). */
  reason: string
}

export interface LoadReport {
  /** What kind of source this was: class subfolders, flat folder, IDX files, generated. */
  layout: 'class-folders' | 'flat-folder' | 'idx' | 'generated'
  source: string
  itemCount: number
  /** Items per class, in class order; empty for unlabelled data. */
  classCounts: number[]
  /** Size the items were decoded from, when they differed (e.g. "mixed: 20x20 .. 64x48"). */
  sourceSizes: string
  /** Resolution and channels chosen for training. */
  width: number
  height: number
  channels: 1 | 3
  skipped: SkippedFile[]
  /** Plain-language remarks: imbalance, nested folders ignored, what alpha became... */
  notes: string[]
  seconds: number
}

/** A WebGPU adapter as Dawn describes it. */
export interface AdapterReport {
  vendor: string
  architecture: string
  device: string
  description: string
  /** A CPU implementation of WebGPU: right answers, no speed. */
  software: boolean
  limits: Record<string, number>
  features: string[]
}

export interface CudaLibrary {
  /** The soname tfjs-node-gpu 4.22 loads. */
  name: string
  /** Where it was found, or null. */
  path: string | null
  /** Other versions of the same library that are present (a CUDA 12 install, say). */
  others: string[]
}

export interface DoctorReport {
  platform: string
  cores: number
  chosen: { backend: string; adapter: AdapterReport | null }
  backends: { name: string; status: string }[]
  cuda: { gpus: string[]; driver: string | null; libraries: CudaLibrary[]; advice: string }
  webgpu: { adapter: AdapterReport | null; failure: string | null }
  /** Reference VAE training (batch 128) for about `seconds` per backend. */
  benchmark: { backend: string; imagesPerSecond: number | null; note: string }[]
}

/** An image as bytes: HWC uint8, base64. */
export interface ImagePayload {
  width: number
  height: number
  channels: number
  base64: string
}

export interface BackendChoice {
  name: string
  /** 'used', or why it was not (e.g. "not installed", "no CUDA device visible"). */
  status: string
}

export interface EngineInfo {
  backend: string
  backends: BackendChoice[]
  version: string
  defaultDatasetDescription: string
  /** The model families with their latent spaces and default training objective. */
  families: FamilyInfo[]
  /** The WebGPU adapter training runs on ("vendor (architecture, device)"), when the backend is webgpu. */
  adapter: string | null
}

export interface FamilyInfo {
  family: ModelFamilyName
  title: string
  needsLabels: boolean
  /** Latent spaces with a KL term (the SRVAE's y has none). */
  klSpaces: string[]
  /** How `TrainArgs.latentDim` spreads over the latent spaces (spreadLatentSize). */
  latentShares: Record<string, LatentShare>
  objective: Required<ObjectiveArgs>
  /** Where a class prior's means start: this many prior standard deviations from 0, spread evenly. */
  classPriorRadius: number
}

export interface DatasetSummary {
  name: string
  itemCount: number
  trainCount: number
  heldOutCount: number
  width: number
  height: number
  channels: number
  classNames: string[]
  report: LoadReport
  /** Epochs each family trains for by default on this many items. */
  defaultEpochs: Record<ModelFamilyName, number>
}

export interface SpaceSummary {
  name: string
  dim: number
  description: string
  isImage: boolean
}

export interface TrainArgs {
  family: ModelFamilyName
  /** A learned class prior p(top latent | c) on the VAE's z or the SRVAE's u (labelled data only). */
  conditionalPrior?: boolean
  epochs?: number
  batchSize?: number
  learningRate?: number
  latentDim?: number
  seed?: number
  /** Cap on training items (for quick looks at big sets); all items are still encoded and mapped. */
  maxTrainItems?: number
  /** A class prior's means start this far from 0, in prior standard deviations (default: FamilyInfo's). */
  classPriorRadius?: number
  /** Training objective (what is reported stays the ELBO); each left out takes the family's default. */
  objective?: ObjectiveArgs
}

export interface ObjectiveArgs {
  /** Weight of each space's KL in what training minimises, e.g. {z_l: 4}. */
  klWeights?: Record<string, number>
  /** Nats per dimension that cost nothing (free bits). */
  freeBits?: number
  /** KL warm-up: steps over which the KL weights rise from 0. */
  warmupSteps?: number
  /** The CDVAE: weight of the term that keeps the class out of z_u. */
  freeSpaceIndependence?: number
  /** The CDVAE: weight of the adversarial term that hides the class from z_u's means. */
  freeSpaceAdversary?: number
}

export interface ModelSummary {
  runId: string
  family: ModelFamilyName
  spaces: SpaceSummary[]
  conditional: boolean
  /** The space whose prior is p(.|c) (class grids), and the free one rows share, or null. */
  conditionalSpace: string | null
  freeSpace: string | null
  classNames: string[]
  parameterCount: number
}

/** UMAP settings the user can change (defaults: 15 neighbours, min. distance 0.1, seed 0, 3D). */
export interface ProjectionSettings {
  nNeighbors: number
  minDist: number
  seed: number
  nComponents: 2 | 3
}

export const DEFAULT_PROJECTION: ProjectionSettings = { nNeighbors: 15, minDist: 0.1, seed: 0, nComponents: 3 }

export interface MapData {
  space: string
  /** 2 for a flat map (positions still carry a zero third coordinate), 3 otherwise. */
  dimensions: 2 | 3
  /** Float32Array of n * 3 positions, base64. */
  positionsBase64: string
  /** Int32Array class per item (or -1), base64. */
  labelsBase64: string
  /** Uint8Array split per item (0 train, 1 held-out), base64. */
  splitBase64: string
  count: number
  final: boolean
  /** Float32Array per-item mean squared reconstruction error, base64 (once computed). */
  reconstructionErrorBase64?: string
}

/**
 * Every item's thumbnail in one block (the sprite atlas hover previews draw from): cells of
 * cellWidth x cellHeight x channels bytes, item after item. Large sets are downsampled (by
 * `downsample`) so that the atlas stays a few tens of megabytes.
 */
export interface ThumbnailAtlas {
  count: number
  cellWidth: number
  cellHeight: number
  channels: number
  downsample: number
  base64: string
}

/** A trained model's folder, as listed for reopening. */
export interface RunListing {
  path: string
  name: string
  family: ModelFamilyName
  dataset: string
  savedAt: string
  step: number
  /** finished: every planned epoch; interrupted: stopped early (cancelled or killed), resumable; failed: diverged. */
  state: 'finished' | 'interrupted' | 'failed' | 'training'
  epochsDone: number
  epochsPlanned: number
  latentDims: Record<string, number>
  /** Held-out negative ELBO (nats) of the last evaluated epoch, when known. */
  heldOutNegElbo: number | null
  /** The name the user gave it, if any. */
  title: string | null
}

/** One run of a comparison (runs.compare). */
export interface RunComparison {
  path: string
  title: string | null
  name: string
  family: ModelFamilyName
  dataset: string
  latentDims: Record<string, number>
  epochsDone: number
  /** Held-out terms after each epoch (nats; bits_per_dim). */
  epochs: { epoch: number; heldOut: Record<string, number> }[]
  /** metrics.json of the run, when it has one. */
  metrics: ModelMetrics | null
}

/** One end of an interpolation: a dataset item, or a point pinned on a map. */
export type PathEnd = { item: number } | { pin: number }

export interface PinnedPoint {
  id: number
  space: string
  position: [number, number, number]
  neighbours: number[]
  images: { name: string; image: ImagePayload }[]
  /** How the latent was made from the map position, in words for the UI. */
  method: string
}

export interface InterpolationResult {
  space: string
  mode: 'linear' | 'spherical'
  /** Decoded images along the path, per named image (x, and y for the SRVAE). */
  strips: { name: string; images: ImagePayload[] }[]
  /** Float32Array steps*3: the path placed on the map by the projection's transform, base64. */
  pathBase64: string
}

export interface ClassGridResult {
  classNames: string[]
  rows: number
  /** [row][class]. */
  images: ImagePayload[][]
  /** SRVAE: the generated y beside x, [row][class]. */
  yImages: ImagePayload[][] | null
  space: string
  freeSpace: string | null
}

export interface TraversalResult {
  space: string
  /** The latent dimensions shown, most informative (largest mean KL) first, with their KL in nats. */
  dimensions: { index: number; kl: number }[]
  values: number[]
  /** [dimension][value]. */
  images: ImagePayload[][]
}

export interface ItemView {
  index: number
  name: string
  label: string | null
  split: 'train' | 'heldout'
  /** Named images: original, reconstruction, and model-specific ones (SRVAE: y, y_decoded). */
  images: { name: string; image: ImagePayload }[]
  predictedLabel: string | null
  /** Nearest items in each latent space (exact, in the latent space itself, not the map). */
  neighbours: { space: string; items: { index: number; image: ImagePayload }[] }[]
}

export type EnginePhase = 'idle' | 'loading' | 'training' | 'encoding' | 'projecting' | 'ready' | 'error'

export interface EngineStatus {
  phase: EnginePhase
  message: string
  /** 0..1 when known. */
  progress: number | null
  etaSeconds: number | null
  backend: string
}

/** Training progress events are the training loop's own records (models/train.ts). */
export type TrainStepEvent = StepProgress
export type TrainEpochEvent = EpochSummary

/** Requests: the argument and result type of each. */
export interface Requests {
  'engine.info': { args: Record<string, never>; result: EngineInfo }
  'dataset.open': { args: { path: string | null; size?: number }; result: DatasetSummary }
  'train.start': { args: TrainArgs; result: ModelSummary }
  'train.pause': { args: Record<string, never>; result: { paused: boolean } }
  'train.resume': { args: Record<string, never>; result: { paused: boolean } }
  'train.cancel': { args: Record<string, never>; result: { cancelled: boolean } }
  'map.get': { args: { space: string }; result: MapData }
  'item.inspect': { args: { index: number }; result: ItemView }
  /** Encode every item with the newest weights and map again, optionally with new UMAP settings. */
  'maps.refresh': { args: { projection?: ProjectionSettings }; result: { started: boolean } }
  'runs.list': { args: Record<string, never>; result: RunListing[] }
  /** Names a run of the app's own runs folder (an empty title clears the name). */
  'run.rename': { args: { path: string; title: string }; result: RunListing[] }
  /** Deletes a run of the app's own runs folder (not one training or open now). */
  'run.delete': { args: { path: string }; result: RunListing[] }
  /** Two or more runs side by side: their held-out curves by epoch and their figures. */
  'runs.compare': { args: { paths: string[] }; result: RunComparison[] }
  /** Per-item reconstruction errors (computed on first use), sent with fresh map.update events. */
  'maps.errors': { args: Record<string, never>; result: { computed: boolean } }
  'dataset.thumbnails': { args: Record<string, never>; result: ThumbnailAtlas }
  /** One item's image at full resolution (the hover preview, where the atlas is downsampled). */
  'dataset.item': { args: { index: number }; result: ImagePayload }
  /** Reopens a trained model's folder (the app's or the CLI's --out): weights, latents, maps. */
  'run.open': { args: { path: string }; result: ModelSummary }
  /** Continues an interrupted run from its last checkpoint, with the options it was started with. */
  'run.resume': { args: { path: string }; result: ModelSummary }
  'decode.point': { args: { space: string; position: [number, number, number] }; result: PinnedPoint }
  interpolate: {
    args: { space: string; from: PathEnd; to: PathEnd; steps: number; mode: 'linear' | 'spherical' }
    result: InterpolationResult
  }
  'generate.grid': { args: { rows: number; temperature: number; seed: number; fromItem?: number }; result: ClassGridResult }
  'generate.samples': { args: { count: number; temperature: number; seed: number }; result: { strips: { name: string; images: ImagePayload[] }[] } }
  traverse: { args: { index: number; space: string; dimensions: number; span: number; steps: number }; result: TraversalResult }
  /** Electron only (answered by the main process): the native folder chooser. */
  'dialog.chooseFolder': { args: Record<string, never>; result: { path: string | null } }
  /** Everything a (re)loaded window needs to show what the engine holds. */
  'engine.state': { args: Record<string, never>; result: EngineState }
  /** Which backends load and why not, the WebGPU adapter, CUDA libraries, and a short benchmark of each. */
  'engine.doctor': { args: { benchSeconds: number }; result: DoctorReport }
  /** Writes the open model's latents and maps into its run folder's exports/ (NPY, CSV, projector folder). */
  'run.export': { args: { formats: ExportFormatName[] }; result: { dir: string; files: string[] } }
  /** Writes the chosen items (a lasso on a map) into the run folder's exports/selection-<time>/: indices, files, latents, map coordinates (NPY and CSV). */
  'selection.export': { args: { indices: number[] }; result: { dir: string; files: string[] } }
}

/** What `run.export` and `cartographer export` write (electron/engine/exports.ts). */
export type ExportFormatName = 'npy' | 'csv' | 'projector' | 'model'
export const EXPORT_FORMAT_NAMES: readonly ExportFormatName[] = ['npy', 'csv', 'projector', 'model']

export interface Events {
  status: EngineStatus
  log: { level: 'info' | 'warn' | 'error'; message: string }
  'dataset.progress': { done: number; total: number; etaSeconds: number | null }
  'dataset.loaded': DatasetSummary
  'train.started': ModelSummary
  'train.step': TrainStepEvent
  'train.epoch': TrainEpochEvent
  'train.finished': { runId: string; outcome: 'completed' | 'cancelled' | 'failed'; message: string }
  /** The engine process died and a new one runs: what the window held must be opened again. */
  'engine.restarted': { reason: string }
  /** What the trained (or reopened) model learned: health per space, 5-NN class accuracy, warnings. */
  'model.metrics': ModelMetrics
  'map.update': MapData
}

export type RequestName = keyof Requests
export type EventName = keyof Events
export type RequestArgs<N extends RequestName> = Requests[N]['args']
export type RequestResult<N extends RequestName> = Requests[N]['result']

export const REQUEST_NAMES: RequestName[] = [
  'engine.info',
  'dataset.open',
  'train.start',
  'train.pause',
  'train.resume',
  'train.cancel',
  'map.get',
  'item.inspect',
  'maps.refresh',
  'runs.list',
  'run.rename',
  'run.delete',
  'runs.compare',
  'maps.errors',
  'run.open',
  'run.resume',
  'dataset.thumbnails',
  'dataset.item',
  'decode.point',
  'interpolate',
  'generate.grid',
  'generate.samples',
  'traverse',
  'dialog.chooseFolder',
  'engine.state',
  'engine.doctor',
  'run.export',
  'selection.export'
]

/** Requests the Electron main process answers itself instead of forwarding to the engine. */
export const MAIN_PROCESS_REQUESTS: RequestName[] = ['dialog.chooseFolder']

/** What the engine holds, for a window that opens (or reloads) while it runs. */
export interface EngineState {
  dataset: DatasetSummary | null
  model: ModelSummary | null
  training: 'idle' | 'running' | 'paused'
  /** Loss terms of every step so far (the curves), and each finished epoch with the step it ended on. */
  steps: { step: number; terms: Record<string, number> }[]
  epochs: (TrainEpochEvent & { step: number })[]
  lastStep: TrainStepEvent | null
  metrics: ModelMetrics | null
  /** Spaces whose maps exist (fetch each with map.get). */
  mapSpaces: string[]
  projection: ProjectionSettings
  status: EngineStatus
}

// Wire messages, the same on every transport.
export interface RequestMessage<N extends RequestName = RequestName> {
  type: 'request'
  id: number
  name: N
  args: RequestArgs<N>
}
export type ResponseMessage = { type: 'response'; id: number; ok: true; result: unknown } | { type: 'response'; id: number; ok: false; error: string }
/**
 * One event on the wire. Without a name it is the union of every event's message, so that a
 * `switch (message.name)` narrows `payload` to that event's type: listeners need no casts.
 */
export type EventMessage<E extends EventName = EventName> = { [K in E]: { type: 'event'; name: K; payload: Events[K] } }[E]

/** The message of event `name`. (TypeScript cannot see that a generic name and its payload make one member of the union: this is the one place that says so.) */
export function eventMessage<E extends EventName>(name: E, payload: Events[E]): EventMessage {
  return { type: 'event', name, payload } as EventMessage
}

// Electron IPC channel names (the preload and the main process both read them from here).
export const IPC_REQUEST_CHANNEL = 'cartographer:request'
export const IPC_EVENT_CHANNEL = 'cartographer:event'

/** The API the renderer sees, whatever the transport. */
export interface EngineClient {
  readonly mode: 'electron' | 'browser'
  request<N extends RequestName>(name: N, args: RequestArgs<N>): Promise<RequestResult<N>>
  onEvent(listener: (message: EventMessage) => void): () => void
}

// ---------------------------------------------------------------------------------------------
// Validation of untrusted arguments: the main process and the engine check every request.

export class ContractError extends Error {}

type Check = (value: unknown, path: string) => void

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * An untrusted value named in an error message: strings cut to 40 characters, anything else by its
 * type. Never String(v): a 100k-deep array overflows the stack and a long name would be echoed whole.
 */
function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)
  if (typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) return String(v)
  return Array.isArray(v) ? 'an array' : `a${typeof v === 'object' ? 'n object' : ` ${typeof v}`}`
}

const optional =
  (check: Check): Check =>
  (v, p) => {
    if (v !== undefined) check(v, p)
  }

const integer =
  (min: number, max: number): Check =>
  (v, p) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      throw new ContractError(`${p} must be a whole number from ${min} to ${max}`)
    }
  }

const finite =
  (min: number, max: number): Check =>
  (v, p) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) {
      throw new ContractError(`${p} must be a number from ${min} to ${max}`)
    }
  }

const shortString =
  (maxLength: number): Check =>
  (v, p) => {
    if (typeof v !== 'string' || v.length === 0 || v.length > maxLength || v.includes('\0')) {
      throw new ContractError(`${p} must be a non-empty string of at most ${maxLength} characters`)
    }
  }

const oneOf =
  (...values: string[]): Check =>
  (v, p) => {
    if (typeof v !== 'string' || !values.includes(v)) throw new ContractError(`${p} must be one of ${values.join(', ')}`)
  }

/** One of a few numbers, as a number (not "3", not [3]). */
const oneOfNumbers =
  (...values: number[]): Check =>
  (v, p) => {
    if (typeof v !== 'number' || !values.includes(v)) throw new ContractError(`${p} must be one of ${values.join(', ')}`)
  }

/** A string of at most `maxLength` printable characters, possibly empty. */
const anyString =
  (maxLength: number): Check =>
  (v, p) => {
    // eslint-disable-next-line no-control-regex
    if (typeof v !== 'string' || v.length > maxLength || /[\u0000-\u001f\u007f]/.test(v)) {
      throw new ContractError(`${p} must be text of at most ${maxLength} characters, without control characters`)
    }
  }

/** A list of `min` to `max` distinct non-empty strings. */
const stringList =
  (min: number, max: number, maxLength: number): Check =>
  (v, p) => {
    if (!Array.isArray(v) || v.length < min || v.length > max || new Set(v).size !== v.length)
      throw new ContractError(`${p} must be a list of ${min} to ${max} distinct entries`)
    v.forEach((x, i) => shortString(maxLength)(x, `${p}[${i}]`))
  }

/** A list of `min` to `max` distinct integers in [0, `largest`]. */
const integerList =
  (min: number, max: number, largest: number): Check =>
  (v, p) => {
    if (!Array.isArray(v) || v.length < min || v.length > max) throw new ContractError(`${p} must be a list of ${min} to ${max} item indices`)
    const bad = v.findIndex((x) => !Number.isInteger(x) || x < 0 || x > largest)
    if (bad >= 0) throw new ContractError(`${p}[${bad}] must be an integer from 0 to ${largest}`)
    if (new Set(v).size !== v.length) throw new ContractError(`${p} must not repeat an index`)
  }

/** A non-empty array of distinct values from a few strings. */
const subsetOf =
  (values: readonly string[]): Check =>
  (v, p) => {
    if (
      !Array.isArray(v) ||
      v.length === 0 ||
      v.length > values.length ||
      new Set(v).size !== v.length ||
      !v.every((x) => typeof x === 'string' && values.includes(x))
    ) {
      throw new ContractError(`${p} must be a list of distinct values from ${values.join(', ')}`)
    }
  }

const boolean: Check = (v, p) => {
  if (typeof v !== 'boolean') throw new ContractError(`${p} must be true or false`)
}

const nullable =
  (check: Check): Check =>
  (v, p) => {
    if (v !== null) check(v, p)
  }

/** An object of a few named numbers: names as `key` allows, values as `value` does. */
const numberRecord =
  (key: Check, value: Check, maxEntries: number): Check =>
  (v, p) => {
    if (!isRecord(v)) throw new ContractError(`${p} must be an object`)
    const entries = Object.entries(v)
    if (entries.length > maxEntries) throw new ContractError(`${p} has more than ${maxEntries} entries`)
    for (const [k, x] of entries) {
      key(k, `${p} key ${describeValue(k)}`)
      value(x, `${p}.${k}`)
    }
  }

function shape(fields: Record<string, Check>): Check {
  return (v, p) => {
    if (!isRecord(v)) throw new ContractError(`${p} must be an object`)
    // Own keys only: "toString" or "__proto__" are not fields because Object.prototype has them.
    for (const key of Object.keys(v)) if (!Object.hasOwn(fields, key)) throw new ContractError(`${p} has an unknown field ${describeValue(key)}`)
    for (const [key, check] of Object.entries(fields)) check(v[key], `${p}.${key}`)
  }
}

const noArgs = shape({})

const vector3: Check = (v, p) => {
  if (!Array.isArray(v) || v.length !== 3) throw new ContractError(`${p} must be three numbers`)
  v.forEach((x, i) => finite(-1e6, 1e6)(x, `${p}[${i}]`))
}

const pathEnd: Check = (v, p) => {
  if (!isRecord(v)) throw new ContractError(`${p} must be {item} or {pin}`)
  if ('item' in v) shape({ item: integer(0, 100_000_000) })(v, p)
  else if ('pin' in v) shape({ pin: integer(0, 1_000_000) })(v, p)
  else throw new ContractError(`${p} must be {item} or {pin}`)
}

const ARG_CHECKS: Record<RequestName, Check> = {
  'engine.info': noArgs,
  'dataset.open': shape({ path: nullable(shortString(4096)), size: optional(integer(8, 256)) }),
  'train.start': shape({
    family: oneOf('vae', 'srvae', 'cdvae'),
    epochs: optional(integer(1, 1000)),
    batchSize: optional(integer(1, 4096)),
    learningRate: optional(finite(1e-6, 1)),
    latentDim: optional(integer(2, 512)),
    seed: optional(integer(0, 2 ** 31 - 1)),
    conditionalPrior: optional(boolean),
    maxTrainItems: optional(integer(16, 10_000_000)),
    classPriorRadius: optional(finite(0.5, 20)),
    objective: optional(
      shape({
        klWeights: optional(numberRecord(shortString(32), finite(0, 100), 8)),
        freeBits: optional(finite(0, 10)),
        warmupSteps: optional(integer(0, 10_000_000)),
        freeSpaceIndependence: optional(finite(0, 1000)),
        freeSpaceAdversary: optional(finite(0, 1000))
      })
    )
  }),
  'train.pause': noArgs,
  'train.resume': noArgs,
  'train.cancel': noArgs,
  'map.get': shape({ space: shortString(32) }),
  'item.inspect': shape({ index: integer(0, 100_000_000) }),
  'maps.refresh': shape({
    projection: optional(shape({ nNeighbors: integer(2, 200), minDist: finite(0, 1), seed: integer(0, 2 ** 31 - 1), nComponents: oneOfNumbers(2, 3) }))
  }),
  'runs.list': noArgs,
  'run.rename': shape({ path: shortString(4096), title: anyString(100) }),
  'run.delete': shape({ path: shortString(4096) }),
  'runs.compare': shape({ paths: stringList(2, 8, 4096) }),
  'maps.errors': noArgs,
  'dataset.thumbnails': noArgs,
  'dataset.item': shape({ index: integer(0, 100_000_000) }),
  'run.open': shape({ path: shortString(4096) }),
  'run.resume': shape({ path: shortString(4096) }),
  'decode.point': shape({ space: shortString(32), position: vector3 }),
  interpolate: shape({
    space: shortString(32),
    from: pathEnd,
    to: pathEnd,
    steps: integer(2, 64),
    mode: oneOf('linear', 'spherical')
  }),
  'generate.grid': shape({
    rows: integer(1, 16),
    temperature: finite(0, 3),
    seed: integer(0, 2 ** 31 - 1),
    fromItem: optional(integer(0, 100_000_000))
  }),
  'generate.samples': shape({ count: integer(1, 64), temperature: finite(0, 3), seed: integer(0, 2 ** 31 - 1) }),
  traverse: shape({
    index: integer(0, 100_000_000),
    space: shortString(32),
    dimensions: integer(1, 32),
    span: finite(0.1, 10),
    steps: integer(2, 21)
  }),
  'dialog.chooseFolder': noArgs,
  'engine.state': noArgs,
  'engine.doctor': shape({ benchSeconds: integer(0, 60) }),
  'run.export': shape({ formats: subsetOf(EXPORT_FORMAT_NAMES) }),
  'selection.export': shape({ indices: integerList(1, 10_000_000, 100_000_000) })
}

/** A request's id where it has a usable one, else -1 (for the error reply to anything else). */
export function requestIdOf(message: unknown): number {
  const id = isRecord(message) ? message.id : undefined
  return typeof id === 'number' && Number.isSafeInteger(id) && id >= 0 ? id : -1
}

/**
 * What an error reply to an untrusted message says: the contract's or the parser's own words, and
 * nothing of an unexpected error's internals (a stack overflow on a 100k-deep array, say).
 */
export function describeRequestError(error: unknown): string {
  if (error instanceof ContractError) return error.message
  if (error instanceof SyntaxError) return `not a JSON request: ${error.message.slice(0, 120)}`
  if (error instanceof RangeError) return 'the request is nested too deeply or too large'
  return 'the request could not be handled'
}

/** Throws ContractError unless `message` is a well-formed request with valid arguments. */
export function validateRequest(message: unknown): RequestMessage {
  if (!isRecord(message)) throw new ContractError('a request must be an object')
  const { type, id, name, args } = message
  if (type !== 'request') throw new ContractError('not a request message')
  integer(0, Number.MAX_SAFE_INTEGER)(id, 'id')
  if (typeof name !== 'string' || !(REQUEST_NAMES as string[]).includes(name)) {
    throw new ContractError(`unknown request ${describeValue(name)}`)
  }
  ARG_CHECKS[name as RequestName](args ?? {}, name)
  return { type: 'request', id: id as number, name: name as RequestName, args: (args ?? {}) as RequestArgs<RequestName> }
}

// Binary arrays as base64, on Node (Buffer) and in the browser (btoa) alike.
export function bytesToBase64(bytes: Uint8Array): string {
  if (typeof Buffer !== 'undefined') return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
  let binary = ''
  const chunk = 0x8000
  for (let i = 0; i < bytes.length; i += chunk) binary += String.fromCharCode(...bytes.subarray(i, i + chunk))
  return btoa(binary)
}

export function base64ToBytes(base64: string): Uint8Array {
  if (typeof Buffer !== 'undefined') return new Uint8Array(Buffer.from(base64, 'base64'))
  const binary = atob(base64)
  const bytes = new Uint8Array(binary.length)
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i)
  return bytes
}

export const float32ToBase64 = (values: Float32Array): string => bytesToBase64(new Uint8Array(values.buffer, values.byteOffset, values.byteLength))
export const int32ToBase64 = (values: Int32Array): string => bytesToBase64(new Uint8Array(values.buffer, values.byteOffset, values.byteLength))

export function base64ToFloat32(base64: string): Float32Array {
  const bytes = base64ToBytes(base64)
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
}

export function base64ToInt32(base64: string): Int32Array {
  const bytes = base64ToBytes(base64)
  return new Int32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
}
