// The window's state: what the engine said (status, dataset, training history, maps) and what the
// user is looking at (selection, hover, hidden classes). Components read it; only the actions
// below change it, so the flow of data stays easy to follow.
import type {
  ClassGridResult,
  DatasetSummary,
  ImagePayload,
  InterpolationResult,
  PathEnd,
  PinnedPoint,
  ProjectionSettings,
  RunListing,
  TraversalResult,
  EngineClient,
  EngineInfo,
  EngineStatus,
  EventMessage,
  ItemView,
  ModelMetrics,
  ModelSummary,
  ExportFormatName,
  RunComparison,
  TrainArgs,
  TrainEpochEvent,
  TrainStepEvent
} from '../../../electron/common/contract'
import { base64ToBytes, base64ToFloat32, base64ToInt32, DEFAULT_PROJECTION } from '../../../electron/common/contract'

export interface MapState {
  positions: Float32Array
  labels: Int32Array
  split: Uint8Array
  /** Per-item mean squared reconstruction error, once the engine has computed it. */
  errors: Float32Array | null
  dimensions: 2 | 3
  final: boolean
  version: number
}

export type ColourMode = 'class' | 'error' | 'split'

/** What the bottom drawer shows: the latest interpolation, class grid, samples or traversal. */
export type DrawerContent =
  | { kind: 'interpolation'; result: InterpolationResult; from: string; to: string }
  | { kind: 'grid'; result: ClassGridResult; fromItem: number | null }
  | { kind: 'samples'; strips: { name: string; images: ImagePayload[] }[] }
  | { kind: 'traversal'; result: TraversalResult; index: number }

export interface HistoryPoint {
  step: number
  terms: Record<string, number>
}

const RECENT_KEY = 'cartographer.recentDatasets'
const RECENT_DATASETS = 5
/** Hover previews kept at full resolution (each a few kB). */
const FULL_IMAGE_CACHE = 256

function readRecent(): string[] {
  try {
    const stored = JSON.parse(localStorage.getItem(RECENT_KEY) ?? '[]') as unknown
    return Array.isArray(stored) ? stored.filter((p): p is string => typeof p === 'string').slice(0, RECENT_DATASETS) : []
  } catch {
    return []
  }
}

class AppState {
  client: EngineClient | null = null
  info = $state<EngineInfo | null>(null)
  status = $state<EngineStatus>({ phase: 'idle', message: 'starting the engine…', progress: null, etaSeconds: null, backend: '…' })
  dataset = $state<DatasetSummary | null>(null)
  loading = $state<{ done: number; total: number; etaSeconds: number | null } | null>(null)
  model = $state<ModelSummary | null>(null)
  training = $state<'idle' | 'running' | 'paused'>('idle')
  lastStep = $state<TrainStepEvent | null>(null)
  /** Grows in place (copying it on every step would cost O(steps²) over a run); stepCount signals growth. */
  stepHistory: HistoryPoint[] = []
  stepCount = $state(0)
  epochHistory = $state.raw<(TrainEpochEvent & { step: number })[]>([])
  /** What the trained or reopened model learned (health, 5-NN class accuracy, warnings). */
  metrics = $state.raw<ModelMetrics | null>(null)
  /** The UMAP settings of the maps (the engine's, after a re-attach). */
  projection = $state<ProjectionSettings>({ ...DEFAULT_PROJECTION })
  maps = $state.raw<Record<string, MapState>>({})
  hovered = $state<number | null>(null)
  selected = $state<number | null>(null)
  item = $state<ItemView | null>(null)
  hiddenClasses = $state<number[]>([])
  /** While on, a left-drag on a map draws a lasso (the L key or the Lasso button). */
  lassoMode = $state(false)
  /** Items chosen with the lasso, on the map where they were drawn round (every map dims the rest). */
  lassoSelection = $state.raw<{ space: string; indices: Int32Array } | null>(null)
  /** The second end of an interpolation (Shift-click), an item or a pinned point. */
  pathEnd = $state<PathEnd | null>(null)
  pins = $state<PinnedPoint[]>([])
  activePin = $state<PinnedPoint | null>(null)
  colourMode = $state<ColourMode>('class')
  drawer = $state<DrawerContent | null>(null)
  /** The interpolation path drawn on its map: space and positions (steps*3). */
  path = $state.raw<{ space: string; positions: Float32Array } | null>(null)
  working = $state<string | null>(null)
  runs = $state<RunListing[]>([])
  /** Runs ticked for comparison, by path. */
  comparePaths = $state<string[]>([])
  /** The runs compared side by side, once asked for. */
  comparison = $state<RunComparison[] | null>(null)
  /** All items' thumbnails (the sprite atlas hover previews draw from), fetched once per dataset. */
  thumbnails = $state.raw<{ cellWidth: number; cellHeight: number; channels: number; downsample: number; bytes: Uint8Array } | null>(null)
  /** Full-resolution images of recently hovered items, where the atlas is downsampled (newest last). */
  private readonly fullImages = new Map<number, Promise<ImagePayload | null>>()
  error = $state<string | null>(null)
  notice = $state<string | null>(null)

  /** Forgets the curves (a new run, or another model opened). */
  private clearHistory(): void {
    this.stepHistory = []
    this.stepCount = 0
    this.epochHistory = []
    this.metrics = null
  }

  connect(client: EngineClient): void {
    this.client = client
    client.onEvent((message) => this.onEvent(message))
    client
      .request('engine.info', {})
      .then((info) => {
        this.info = info
        this.status = { ...this.status, backend: info.backend, message: 'Open a dataset folder, or try the built-in dataset' }
        void this.listRuns()
        void this.attach()
      })
      .catch((error: Error) => (this.error = error.message))
  }

  /**
   * Shows whatever the engine already holds: a window opened (or reloaded) while a dataset is
   * open, a model is trained or training runs gets its dataset, model, curves, maps and controls.
   */
  async attach(): Promise<void> {
    const client = this.client
    const state = await client?.request('engine.state', {}).catch(() => null)
    if (!client || !state) return
    if (state.status.message !== 'starting') this.status = state.status
    if (state.dataset) {
      this.dataset = state.dataset
      void this.loadThumbnails()
    }
    this.model = state.model
    this.training = state.training
    this.stepHistory = state.steps.map((s) => ({ step: s.step, terms: s.terms }))
    this.stepCount = this.stepHistory.length
    this.epochHistory = state.epochs
    this.lastStep = state.lastStep
    this.metrics = state.metrics
    this.projection = { ...state.projection }
    for (const space of state.mapSpaces) {
      const map = await client.request('map.get', { space }).catch(() => null)
      if (map) this.onEvent({ type: 'event', name: 'map.update', payload: map })
    }
  }

  /** The engine died and a new one runs: nothing the window showed exists any more. */
  private forgetEngineState(reason: string): void {
    this.dataset = null
    this.model = null
    this.training = 'idle'
    this.maps = {}
    this.item = null
    this.selected = null
    this.lastStep = null
    this.clearExploration()
    this.clearHistory()
    this.error = reason
  }

  private onEvent(message: EventMessage): void {
    switch (message.name) {
      case 'status':
        this.status = message.payload
        break
      case 'dataset.progress':
        this.loading = message.payload
        break
      case 'train.step': {
        const step = message.payload
        this.lastStep = step
        const global = step.epoch * step.stepsPerEpoch + step.stepInEpoch
        this.stepHistory.push({ step: global, terms: step.terms })
        this.stepCount = this.stepHistory.length
        break
      }
      case 'dataset.loaded':
        this.dataset = message.payload
        void this.loadThumbnails()
        break
      case 'train.epoch': {
        const epoch = message.payload
        const last = this.stepHistory.at(-1)?.step ?? 0
        this.epochHistory = [...this.epochHistory, { ...epoch, step: last }]
        break
      }
      case 'engine.restarted':
        this.forgetEngineState(message.payload.reason)
        void this.listRuns()
        break
      case 'model.metrics':
        this.metrics = message.payload
        break
      case 'train.finished': {
        const { outcome, message: text } = message.payload
        this.training = 'idle'
        if (outcome === 'failed') this.error = text
        else this.notice = text
        void this.listRuns()
        break
      }
      case 'map.update': {
        const map = message.payload
        const previous = this.maps[map.space]
        this.maps = {
          ...this.maps,
          [map.space]: {
            positions: base64ToFloat32(map.positionsBase64),
            labels: base64ToInt32(map.labelsBase64),
            split: base64ToBytes(map.splitBase64),
            errors: map.reconstructionErrorBase64 ? base64ToFloat32(map.reconstructionErrorBase64) : null,
            dimensions: map.dimensions,
            final: map.final,
            version: (previous?.version ?? 0) + 1
          }
        }
        break
      }
      case 'log': {
        const log = message.payload
        if (log.level === 'error') this.error = log.message
        break
      }
    }
  }

  private async run<T>(action: () => Promise<T>): Promise<T | null> {
    this.error = null
    try {
      return await action()
    } catch (error) {
      this.error = (error as Error).message
      return null
    }
  }

  async openDataset(path: string | null): Promise<void> {
    const client = this.client
    if (!client) return
    this.loading = { done: 0, total: 0, etaSeconds: null }
    const summary = await this.run(() => client.request('dataset.open', { path }))
    this.loading = null
    if (!summary) return
    if (path) this.rememberDataset(path)
    this.dataset = summary
    this.model = null
    this.maps = {}
    this.item = null
    this.selected = null
    this.hiddenClasses = []
    this.clearExploration()
    this.clearHistory()
  }

  /** Folders opened lately, newest first (kept by the window, not the engine). */
  recentDatasets = $state<string[]>(readRecent())

  private rememberDataset(path: string): void {
    this.recentDatasets = [path, ...this.recentDatasets.filter((p) => p !== path)].slice(0, RECENT_DATASETS)
    try {
      localStorage.setItem(RECENT_KEY, JSON.stringify(this.recentDatasets))
    } catch {
      // Storage may be off (a private window): the list lasts this session.
    }
  }

  private async loadThumbnails(): Promise<void> {
    this.thumbnails = null
    const atlas = await this.client?.request('dataset.thumbnails', {}).catch(() => null)
    this.fullImages.clear()
    if (atlas)
      this.thumbnails = {
        cellWidth: atlas.cellWidth,
        cellHeight: atlas.cellHeight,
        channels: atlas.channels,
        downsample: atlas.downsample,
        bytes: base64ToBytes(atlas.base64)
      }
  }

  /**
   * An item's image at full resolution, for a hover preview whose atlas cell is downsampled (a
   * 70k-item set's atlas holds 14 px cells for 28 px images); null when it cannot be had.
   */
  fullImage(index: number): Promise<ImagePayload | null> {
    // The promise is kept, so that the mouse passing over the same point again asks nothing more.
    const known = this.fullImages.get(index)
    if (known) return known
    const pending = this.client?.request('dataset.item', { index }).catch(() => null) ?? Promise.resolve(null)
    this.fullImages.set(index, pending)
    if (this.fullImages.size > FULL_IMAGE_CACHE) this.fullImages.delete(this.fullImages.keys().next().value as number)
    return pending
  }

  async listRuns(): Promise<void> {
    const runs = await this.client?.request('runs.list', {}).catch(() => null)
    if (runs) this.setRuns(runs)
  }

  private setRuns(runs: RunListing[]): void {
    this.runs = runs
    this.comparePaths = this.comparePaths.filter((path) => runs.some((r) => r.path === path))
  }

  async renameRun(path: string, title: string): Promise<void> {
    const client = this.client
    if (!client) return
    const runs = await this.run(() => client.request('run.rename', { path, title }))
    if (runs) this.setRuns(runs)
  }

  async deleteRun(path: string): Promise<void> {
    const client = this.client
    if (!client) return
    const runs = await this.run(() => client.request('run.delete', { path }))
    if (runs) this.setRuns(runs)
  }

  toggleCompare(path: string): void {
    this.comparePaths = this.comparePaths.includes(path) ? this.comparePaths.filter((p) => p !== path) : [...this.comparePaths, path].slice(-8)
  }

  async compareRuns(): Promise<void> {
    const client = this.client
    if (!client || this.comparePaths.length < 2) return
    const paths = [...this.comparePaths]
    const comparison = await this.run(() => client.request('runs.compare', { paths }))
    if (comparison) this.comparison = comparison
  }

  /** Reopens a trained model's folder: its dataset is loaded if needed, then its maps. */
  async openRun(path: string): Promise<void> {
    await this.switchRun('run.open', path)
  }

  /** Continues an interrupted run: its curves so far, then live training. */
  async resumeRun(path: string): Promise<void> {
    if (!(await this.switchRun('run.resume', path))) return
    this.training = 'running'
    void this.listRuns()
  }

  /** Leaves what the window shows for another run (opened or resumed), with its curves and map settings. */
  private async switchRun(request: 'run.open' | 'run.resume', path: string): Promise<boolean> {
    const client = this.client
    if (!client) return false
    this.clearExploration()
    this.maps = {}
    this.item = null
    this.selected = null
    this.notice = null
    this.clearHistory()
    const model = await this.run(() => client.request(request, { path }))
    if (!model) return false
    this.model = model
    await this.loadHistory()
    return true
  }

  /** The open run's curves so far and the settings of its maps, as the engine holds them. */
  private async loadHistory(): Promise<void> {
    const state = await this.client?.request('engine.state', {}).catch(() => null)
    if (!state) return
    this.stepHistory = state.steps.map((s) => ({ step: s.step, terms: s.terms }))
    this.stepCount = this.stepHistory.length
    this.epochHistory = state.epochs
    this.projection = { ...state.projection }
  }

  /** Writes the open model's latents and maps into its run folder's exports/ and says where. */
  async exportRun(formats: ExportFormatName[]): Promise<void> {
    const client = this.client
    if (!client) return
    const result = await this.run(() => client.request('run.export', { formats }))
    if (result) this.notice = `Exported ${result.files.length} files to ${result.dir}`
  }

  /** Writes the lassoed items (indices, files, latents, map coordinates) into the run's exports/. */
  async exportSelection(): Promise<void> {
    const client = this.client
    const chosen = this.lassoSelection
    if (!client || !chosen) return
    const result = await this.run(() => client.request('selection.export', { indices: Array.from(chosen.indices) }))
    if (result) this.notice = `Exported ${chosen.indices.length.toLocaleString('en')} selected items (${result.files.length} files) to ${result.dir}`
  }

  async chooseFolder(): Promise<string | null> {
    const client = this.client
    if (!client || client.mode !== 'electron') return null
    const result = await this.run(() => client.request('dialog.chooseFolder', {}))
    return result?.path ?? null
  }

  async train(args: TrainArgs): Promise<void> {
    const client = this.client
    if (!client) return
    this.clearHistory()
    this.maps = {}
    this.item = null
    this.selected = null
    this.notice = null
    this.clearExploration()
    const model = await this.run(() => client.request('train.start', args))
    if (!model) return
    this.model = model
    this.training = 'running'
  }

  async pause(): Promise<void> {
    if (await this.run(() => this.client!.request('train.pause', {}))) this.training = 'paused'
  }

  async resume(): Promise<void> {
    if (await this.run(() => this.client!.request('train.resume', {}))) this.training = 'running'
  }

  async cancel(): Promise<void> {
    await this.run(() => this.client!.request('train.cancel', {}))
  }

  async inspect(index: number | null): Promise<void> {
    this.selected = index
    this.activePin = null
    if (index === null) {
      this.item = null
      return
    }
    const item = await this.run(() => this.client!.request('item.inspect', { index }))
    if (item && this.selected === index) this.item = item
  }

  private clearExploration(): void {
    this.lassoSelection = null
    this.pathEnd = null
    this.pins = []
    this.activePin = null
    this.drawer = null
    this.path = null
  }

  /** Runs an exploration request with a busy note, keeping the UI responsive. */
  private async explore<T>(label: string, action: () => Promise<T>): Promise<T | null> {
    this.working = label
    try {
      return await this.run(action)
    } finally {
      this.working = null
    }
  }

  setPathEnd(end: PathEnd | null): void {
    this.pathEnd = end
  }

  async decodePoint(space: string, position: [number, number, number]): Promise<void> {
    const pin = await this.explore('decoding that place', () => this.client!.request('decode.point', { space, position }))
    if (!pin) return
    this.pins = [...this.pins, pin]
    this.activePin = pin
  }

  endLabel(end: PathEnd): string {
    return 'item' in end ? `item #${end.item}` : `pin ${end.pin}`
  }

  async interpolate(space: string, from: PathEnd, to: PathEnd, steps: number, mode: 'linear' | 'spherical'): Promise<void> {
    const result = await this.explore('interpolating', () => this.client!.request('interpolate', { space, from, to, steps, mode }))
    if (!result) return
    this.drawer = { kind: 'interpolation', result, from: this.endLabel(from), to: this.endLabel(to) }
    this.path = { space, positions: base64ToFloat32(result.pathBase64) }
  }

  async generateGrid(rows: number, temperature: number, seed: number, fromItem: number | null): Promise<void> {
    const result = await this.explore('generating', () =>
      this.client!.request('generate.grid', { rows, temperature, seed, ...(fromItem === null ? {} : { fromItem }) })
    )
    if (result) this.drawer = { kind: 'grid', result, fromItem }
  }

  async generateSamples(count: number, temperature: number, seed: number): Promise<void> {
    const result = await this.explore('sampling', () => this.client!.request('generate.samples', { count, temperature, seed }))
    if (result) this.drawer = { kind: 'samples', strips: result.strips }
  }

  async traverse(index: number, space: string): Promise<void> {
    const result = await this.explore('traversing', () => this.client!.request('traverse', { index, space, dimensions: 8, span: 3, steps: 9 }))
    if (result) this.drawer = { kind: 'traversal', result, index }
  }

  /** Colour the maps by class, reconstruction error (computed by the engine on first use) or split. */
  async setColourMode(mode: ColourMode): Promise<void> {
    this.colourMode = mode
    const needsErrors = mode === 'error' && Object.values(this.maps).some((m) => !m.errors)
    if (needsErrors) await this.explore('computing reconstruction errors', () => this.client!.request('maps.errors', {}))
  }

  async refreshMaps(projection?: ProjectionSettings): Promise<void> {
    await this.run(() => this.client!.request('maps.refresh', projection ? { projection } : {}))
  }

  toggleClass(index: number): void {
    this.hiddenClasses = this.hiddenClasses.includes(index) ? this.hiddenClasses.filter((c) => c !== index) : [...this.hiddenClasses, index]
  }
}

export const app = new AppState()

export function formatSeconds(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '–'
  const s = Math.max(0, Math.round(seconds))
  const m = Math.floor(s / 60)
  const h = Math.floor(m / 60)
  if (h) return `${h}:${String(m % 60).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`
  return `${m}:${String(s % 60).padStart(2, '0')}`
}
