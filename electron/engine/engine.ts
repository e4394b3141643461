// The engine: datasets, training, encoding, decoding, projection and run files. It knows nothing
// of Electron or of WebSockets: a transport hands it validated request messages and forwards the
// events it emits. It runs as a child process of the Electron main process, of the browser-mode
// host, or in-process in tests.
import { existsSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { isAbsolute, join, resolve } from 'node:path'
import * as tf from '@tensorflow/tfjs'
import {
  bytesToBase64,
  float32ToBase64,
  int32ToBase64,
  type DatasetSummary,
  type EngineInfo,
  type EngineState,
  type EngineStatus,
  type EnginePhase,
  type ExportFormatName,
  type RunListing,
  type EventName,
  type Events,
  DEFAULT_PROJECTION,
  type ClassGridResult,
  type ProjectionSettings,
  type ImagePayload,
  type InterpolationResult,
  type PathEnd,
  type PinnedPoint,
  type TraversalResult,
  type ItemView,
  type MapData,
  type ModelSummary,
  type RequestArgs,
  type RequestMessage,
  type RequestName,
  type RequestResult,
  type TrainArgs
} from '../common/contract'
import { defaultModelConfig, MODEL_FAMILIES, type ModelConfig, type VaeFamilyModel } from '../../models/index'
import { defaultEpochs, type Trainer, type EpochSummary, type StepProgress } from '../../models/train'
import type { ModelMetrics } from '../../models/metrics'
import { IWAE_SAMPLES } from '../../models/iwae'
import { selectBackend, type BackendPreference, type BackendSelection } from './backend/select'
import { runDoctor } from './backend/doctor-process'
import { adapterName } from './backend/webgpu'
import { describeTrainer } from './training/parallel-trainer'
import { defaultDatasetPath, loadDataset, loadDefaultDataset, type ImageDataset } from './datasets/index'
import type { LatentProjection } from './projection/index'
import {
  ancestralSamples,
  classGrid,
  contextFor,
  decodeInSpace,
  interpolateContext,
  interpolatePath,
  klPerDimension,
  latentAtMapPoint,
  nearestNeighbours,
  reconstructionErrors,
  toImagePayload,
  traversalGrid
} from './explorer'
import { runProjection } from './projection/runner'
import { writeExports } from './exports'
import { thumbnailAtlas } from './datasets/thumbnails'
import { compareRun, isGeneratedSource, listRuns, ownRunFolder, renameRun } from './run/catalog'
import { checkDatasetFits, trainingData } from './run/config'
import { RunFolder, type Latents, type RunRecord } from './run/folder'
import { weightsDigest } from './run/measure'
import { encodeAndStore, measureAndStore, openStoredRun, readResumable, resumeRun, startRun, type TrainingRun } from './run/session'

export const ENGINE_VERSION = '0.1.0'

export interface EngineOptions {
  /** Where runs (checkpoints, latents, projections) are written. */
  dataDir: string
  emit<E extends EventName>(name: E, payload: Events[E]): void
  backend?: BackendPreference
}

/** The open model and what the window has made of it: its folder, training while it trains, latents, maps, pins. */
interface Session {
  runId: string
  folder: RunFolder
  model: VaeFamilyModel
  trainer: Trainer | null
  /** Posterior means per space, n * dim, in item order. */
  latents: Latents
  /** weightsDigest of the weights that encoded `latents` (null before the first encoding). */
  latentsWeights: string | null
  /** Positions per space, n * 3 (z = 0 on a 2D map), and how many dimensions the map has. */
  maps: Map<string, { positions: Float32Array; dimensions: 2 | 3 }>
  /** The fitted projection per space (its transform places interpolation paths). */
  projections: Map<string, LatentProjection>
  /** Per-item mean squared reconstruction error, once computed. */
  reconstructionErrors: Float32Array | null
  /** Points pinned on a map: their values in every space. */
  pins: Map<number, { space: string; values: Record<string, Float32Array> }>
  nextPin: number
  projecting: boolean
  projectionSettings: ProjectionSettings
  /** What the model learned (health, 5-NN class accuracy, warnings), once measured. */
  metrics: ModelMetrics | null
  /** The curves so far, for a window that re-attaches: every step's terms and each epoch. */
  steps: { step: number; terms: Record<string, number> }[]
  epochs: (EpochSummary & { step: number })[]
  lastStep: StepProgress | null
  abort: AbortController
}

const POINT_DECODE_NEIGHBOURS = 8
const POINT_DECODE_METHOD = `inverse-distance weighted mean (weights 1/d²) of the latents of the ${POINT_DECODE_NEIGHBOURS} items nearest to the clicked place on the map`

type Handlers = { [N in RequestName]: (args: RequestArgs<N>) => Promise<RequestResult<N>> }

export class Engine {
  private readonly backendReady: Promise<BackendSelection>
  private backend: BackendSelection | null = null
  private dataset: ImageDataset | null = null
  private session: Session | null = null
  /** Set while train.start is between its check and the new session: the check holds across awaits. */
  private startingTraining = false
  /** Counts dataset.open requests: only the newest may replace the dataset. */
  private datasetTicket = 0
  private lastStatus: EngineStatus = { phase: 'idle', message: 'starting', progress: null, etaSeconds: null, backend: 'starting' }
  private phase: EnginePhase = 'idle'
  private lastStatusAt = 0

  constructor(private readonly options: EngineOptions) {
    this.backendReady = selectBackend(options.backend ?? 'auto').then((selection) => (this.backend = selection))
  }

  async handle(message: RequestMessage): Promise<unknown> {
    await this.backendReady
    const handler = this.handlers[message.name] as (args: unknown) => Promise<unknown>
    return handler(message.args)
  }

  private emit<E extends EventName>(name: E, payload: Events[E]): void {
    this.options.emit(name, payload)
  }

  private status(phase: EnginePhase, message: string, progress: number | null = null, etaSeconds: number | null = null, force = true): void {
    const now = performance.now()
    // Progress updates are throttled to ~10 a second; phase changes always go out.
    if (!force && phase === this.phase && now - this.lastStatusAt < 100) return
    this.phase = phase
    this.lastStatusAt = now
    this.lastStatus = { phase, message, progress, etaSeconds, backend: this.backend?.backend ?? 'starting' }
    this.emit('status', this.lastStatus)
  }

  private readonly handlers: Handlers = {
    'engine.info': async () => this.info(),
    'engine.state': async () => this.state(),
    'engine.doctor': async (args) => {
      // The benchmark would compete with training for the same cores and distort both.
      if (args.benchSeconds > 0 && this.session?.trainer) throw new Error('the benchmark waits until training finishes (the report without it is ready now)')
      return runDoctor(args.benchSeconds)
    },
    'run.export': async (args) => this.exportRun(args.formats),
    'selection.export': async (args) => this.exportRun(['npy', 'csv'], Int32Array.from(args.indices)),
    'dataset.open': async (args) => this.openDataset(args.path, args.size),
    'train.start': async (args) => this.startTraining(args),
    'train.pause': async () => {
      this.requireTrainer().pause()
      this.status('training', 'training paused')
      return { paused: true }
    },
    'train.resume': async () => {
      this.requireTrainer().resume()
      return { paused: false }
    },
    'train.cancel': async () => {
      const session = this.session
      if (!session) return { cancelled: false }
      session.trainer?.cancel()
      session.abort.abort(new Error('cancelled'))
      return { cancelled: true }
    },
    'map.get': async (args) => this.mapData(args.space, true),
    'item.inspect': async (args) => this.inspect(args.index),
    'runs.list': async () => this.listOwnRuns(),
    'run.rename': async (args) => {
      await renameRun(await ownRunFolder(this.runsDir, args.path), args.title)
      return this.listOwnRuns()
    },
    'run.delete': async (args) => {
      const { dir } = await ownRunFolder(this.runsDir, args.path)
      if (this.session?.folder.dir === dir)
        throw new Error(this.session.trainer ? 'this run is training: cancel it before deleting it' : 'this run is open: open another model before deleting it')
      await rm(dir, { recursive: true, force: true })
      return this.listOwnRuns()
    },
    'runs.compare': async (args) => Promise.all(args.paths.map((path) => compareRun(path))),
    'dataset.thumbnails': async () => thumbnailAtlas(this.requireDataset()),
    'dataset.item': async (args) => this.itemImage(this.requireItem(args.index)),
    'run.open': async (args) => this.openRun(args.path),
    'run.resume': async (args) => this.resumeRun(args.path),
    'maps.errors': async () => {
      const session = this.requireModel()
      const dataset = this.requireDataset()
      if (!session.reconstructionErrors) {
        const n = dataset.split.length
        this.status('encoding', 'reconstruction error of every item', 0)
        session.reconstructionErrors = await reconstructionErrors(
          session.model,
          dataset.pixels,
          { height: dataset.height, width: dataset.width, channels: dataset.channels },
          500,
          (done) => this.status('encoding', `reconstruction error ${done.toLocaleString('en')} / ${n.toLocaleString('en')}`, done / n, null, false)
        )
        // Says what was done, not what the window shows: the colour mode may change back while this stands.
        this.status('ready', `ready: reconstruction error of all ${n.toLocaleString('en')} items computed`)
      }
      for (const space of session.maps.keys()) this.emit('map.update', this.mapData(space, true))
      return { computed: true }
    },
    'maps.refresh': async (args) => {
      const session = this.requireModel()
      if (session.projecting) return { started: false }
      if (args.projection) session.projectionSettings = { ...args.projection }
      void this.encodeAndProject(session)
      return { started: true }
    },
    'decode.point': async (args) => this.decodePoint(args.space, args.position),
    interpolate: async (args) => this.interpolate(args),
    'generate.grid': async (args) => this.generateGrid(args),
    'generate.samples': async (args) => {
      const session = this.requireModel()
      const samples = await ancestralSamples(session.model, args.count, args.temperature, args.seed)
      return { strips: Object.entries(samples).map(([name, images]) => ({ name, images })) }
    },
    traverse: async (args) => this.traverse(args),
    'dialog.chooseFolder': async () => {
      throw new Error('the folder dialog is only available in the desktop app; type a path instead')
    }
  }

  private state(): EngineState {
    const session = this.session
    const trainer = session?.trainer ?? null
    return {
      dataset: this.dataset ? this.summary(this.dataset) : null,
      model: session ? this.modelSummary(session) : null,
      training: trainer ? (trainer.isPaused ? 'paused' : 'running') : 'idle',
      steps: session?.steps ?? [],
      epochs: session?.epochs ?? [],
      lastStep: session?.lastStep ?? null,
      metrics: session?.metrics ?? null,
      mapSpaces: session ? [...session.maps.keys()] : [],
      projection: session?.projectionSettings ?? { ...DEFAULT_PROJECTION },
      status: this.lastStatus
    }
  }

  private info(): EngineInfo {
    const backend = this.backend as BackendSelection
    const fashion = defaultDatasetPath()
    return {
      backend: backend.backend,
      backends: backend.choices,
      version: ENGINE_VERSION,
      defaultDatasetDescription: fashion ? `Fashion-MNIST (${fashion})` : 'generated shapes (Fashion-MNIST is not installed)',
      adapter: backend.adapter ? adapterName(backend.adapter) : null,
      families: MODEL_FAMILIES.map(({ family, title, needsLabels }) => {
        const config = defaultModelConfig(family, { height: 28, width: 28, channels: 1 }, 2)
        const { klWeights, freeBits, warmupSteps, freeSpaceIndependence, freeSpaceAdversary } = config.objective
        return {
          family,
          title,
          needsLabels,
          klSpaces: Object.keys(config.latentDims),
          objective: { klWeights: { ...klWeights }, freeBits, warmupSteps, freeSpaceIndependence, freeSpaceAdversary },
          classPriorRadius: config.classPriorRadius
        }
      })
    }
  }

  private requireDataset(): ImageDataset {
    if (!this.dataset) throw new Error('open a dataset first')
    return this.dataset
  }

  private requireTrainer(): Trainer {
    const trainer = this.session?.trainer
    if (!trainer) throw new Error('no training is running')
    return trainer
  }

  private summary(dataset: ImageDataset): DatasetSummary {
    const heldOut = dataset.split.reduce((sum, s) => sum + s, 0)
    return {
      name: dataset.name,
      itemCount: dataset.split.length,
      trainCount: dataset.split.length - heldOut,
      heldOutCount: heldOut,
      width: dataset.width,
      height: dataset.height,
      channels: dataset.channels,
      classNames: dataset.classNames,
      report: dataset.report,
      defaultEpochs: Object.fromEntries(
        MODEL_FAMILIES.map(({ family }) => [family, defaultEpochs(dataset.split.length - heldOut, family)])
      ) as DatasetSummary['defaultEpochs']
    }
  }

  async openDataset(path: string | null, size?: number): Promise<DatasetSummary> {
    if (this.session?.trainer || this.startingTraining) throw new Error('stop the training before opening another dataset')
    return this.loadDataset(path, size)
  }

  /** Loads a dataset and makes it the open one; callers check first that no training is going. */
  private async loadDataset(path: string | null, size?: number): Promise<DatasetSummary> {
    if (path !== null && !isAbsolute(path)) throw new Error(`give the dataset folder as an absolute path (got "${path.slice(0, 200)}")`)
    // The newest request wins: one that finishes after a later one started changes nothing.
    const ticket = ++this.datasetTicket
    this.status('loading', path ? `loading ${path}` : 'loading the built-in dataset', 0)
    const onProgress = (p: { done: number; total: number; etaSeconds: number | null }) => {
      this.emit('dataset.progress', p)
      this.status(
        'loading',
        `loading images ${p.done.toLocaleString('en')} / ${p.total.toLocaleString('en')}`,
        p.total ? p.done / p.total : null,
        p.etaSeconds,
        false
      )
    }
    try {
      // Decoded image folders are cached in the data folder: reopening a large folder is fast.
      const cacheDir = join(this.options.dataDir, 'cache')
      const dataset = path ? await loadDataset(path, { size, cacheDir }, onProgress) : await loadDefaultDataset(onProgress)
      if (ticket !== this.datasetTicket) throw new Error(`the dataset ${path ?? '(built-in)'} was replaced by a later request before it finished loading`)
      this.dataset = dataset
      this.disposeSession()
      const summary = this.summary(dataset)
      this.emit('dataset.loaded', summary)
      this.status('idle', `${summary.name}: ${summary.itemCount.toLocaleString('en')} items loaded in ${dataset.report.seconds.toFixed(1)} s`)
      return summary
    } catch (error) {
      if (ticket === this.datasetTicket) this.status('error', (error as Error).message)
      throw error
    }
  }

  private newSession(runId: string, folder: RunFolder, model: VaeFamilyModel, trainer: Trainer | null): Session {
    this.session = {
      runId,
      folder,
      model,
      trainer,
      latents: new Map(),
      latentsWeights: null,
      maps: new Map(),
      projections: new Map(),
      reconstructionErrors: null,
      pins: new Map(),
      nextPin: 1,
      projecting: false,
      projectionSettings: { ...DEFAULT_PROJECTION },
      metrics: null,
      steps: [],
      epochs: [],
      lastStep: null,
      abort: new AbortController()
    }
    return this.session
  }

  private modelSummary(session: Session): ModelSummary {
    const { model } = session
    return {
      runId: session.runId,
      family: model.config.family,
      spaces: model.spaces.map((s) => ({ ...s })),
      conditional: model.conditionalSpace !== null,
      conditionalSpace: model.conditionalSpace,
      freeSpace: model.freeSpace,
      classNames: this.requireDataset().classNames,
      parameterCount: model.parameters.count()
    }
  }

  private disposeSession(): void {
    if (!this.session) return
    this.session.abort.abort(new Error('replaced'))
    this.session.model.dispose()
    // Trainer.dispose also cancels a run in progress and stops a parallel trainer's workers.
    this.session.trainer?.dispose()
    this.session = null
  }

  async startTraining(args: TrainArgs): Promise<ModelSummary> {
    const dataset = this.requireDataset()
    // Checked and set before the first await: a double-click must not start two runs.
    if (this.session?.trainer || this.startingTraining) throw new Error('a training run is already going; cancel it first')
    this.startingTraining = true
    try {
      return await this.beginTraining(dataset, args)
    } finally {
      this.startingTraining = false
    }
  }

  private async beginTraining(dataset: ImageDataset, args: TrainArgs): Promise<ModelSummary> {
    const runId = `${new Date().toISOString().replace(/[:.]/g, '-')}-${args.family}`
    // startRun checks every setting before it writes anything: a bad one leaves the open model open.
    const run = await startRun(new RunFolder(join(this.runsDir, runId)), dataset, args, this.backendName, runId)
    this.disposeSession()
    const session = this.newSession(runId, run.folder, run.model, run.trainer)
    const summary = this.modelSummary(session)
    this.emit('train.started', summary)
    void this.runSession(session, run)
    return summary
  }

  /** Continues an interrupted run from its last checkpoint, with the options it was started with. */
  async resumeRun(path: string): Promise<ModelSummary> {
    if (this.session?.trainer || this.startingTraining) throw new Error('a training run is already going; cancel it first')
    this.startingTraining = true
    try {
      const resumable = await readResumable(new RunFolder(resolve(path)))
      const { folder, position } = resumable
      if (resumable.finished) throw new Error(`this run is finished (${position.epoch} of ${resumable.options.epochs} epochs): open it, or train a new one`)
      const dataset = await this.openRunDataset(resumable.record, resumable.saved.document.config)
      const run = await resumeRun(resumable, dataset, this.backendName)
      this.disposeSession()
      const session = this.newSession(folder.name, folder, run.model, run.trainer)
      session.epochs = run.history.map((summary) => ({ ...summary, step: summary.epoch * run.trainer.stepsPerEpoch - 1 }))
      const summary = this.modelSummary(session)
      this.emit('train.started', summary)
      this.emit('log', { level: 'info', message: `resuming ${folder.name} at epoch ${position.epoch + 1} of ${run.epochs}, step ${position.stepInEpoch + 1}` })
      void this.runSession(session, run)
      return summary
    } finally {
      this.startingTraining = false
    }
  }

  /**
   * The dataset a stored run was trained on, opened unless it is the one open already, and checked
   * against the model: same image shape, same number of classes.
   */
  private async openRunDataset(record: RunRecord, config: ModelConfig): Promise<ImageDataset> {
    if (!this.dataset || this.dataset.report.source !== record.dataset) {
      if (isGeneratedSource(record.dataset)) await this.loadDataset(null)
      else if (!existsSync(record.dataset)) throw new Error(`the dataset this model was trained on is not at ${record.dataset} any more`)
      else await this.loadDataset(resolve(record.dataset))
    }
    const dataset = this.requireDataset()
    // A reloaded window may not know the dataset the engine already holds: say it again.
    this.emit('dataset.loaded', this.summary(dataset))
    checkDatasetFits(config, dataset)
    return dataset
  }

  /** Where the app's runs are kept: one folder per run. */
  private get runsDir(): string {
    return join(this.options.dataDir, 'runs')
  }

  /** The backend the engine selected (tf's current one before selection). */
  private get backendName(): string {
    return this.backend?.backend ?? tf.getBackend()
  }

  /** Trains the session's run to its end, streaming steps and epochs, then encodes and maps it. */
  private async runSession(session: Session, run: TrainingRun): Promise<void> {
    const trainer = run.trainer
    // Asked again on each step: the workers report their backend once they have started.
    const where = () => describeTrainer(trainer, this.backendName)
    this.status('training', `training on ${where()}: first steps`, 0)
    const { outcome, message } = await run.train({
      onStep: (p) => {
        session.lastStep = p
        session.steps.push({ step: p.epoch * p.stepsPerEpoch + p.stepInEpoch, terms: p.terms })
        this.emit('train.step', p)
        const done = (p.epoch * p.stepsPerEpoch + p.stepInEpoch) / (p.epochs * p.stepsPerEpoch)
        const label = trainer.isPaused
          ? 'training paused'
          : `training epoch ${p.epoch + 1}/${p.epochs} on ${where()} · loss ${p.loss.toFixed(1)} · ${Math.round(p.itemsPerSecond)} items/s`
        this.status('training', label, done, p.etaSeconds, false)
      },
      onEpoch: (summary) => {
        session.epochs.push({ ...summary, step: session.steps.at(-1)?.step ?? 0 })
        this.emit('train.epoch', summary)
      }
    })
    session.trainer = null
    this.emit('train.finished', { runId: session.runId, outcome, message })
    if (outcome === 'completed') await this.encodeAndProject(session)
    else if (outcome === 'cancelled') this.status('idle', 'training cancelled')
    else this.status('error', message)
  }

  /** Encodes every item (posterior means) and projects each latent space to 3D, streaming frames. */
  async encodeAndProject(session: Session, reuse = false): Promise<void> {
    const dataset = this.requireDataset()
    const n = dataset.split.length
    session.projecting = true
    try {
      // Encoding every item is the slow part of a reopen (11 s for 70k on two cores): latents in
      // memory or stored with the run are used when the same weights made them.
      const weights = await weightsDigest(session.model)
      let fresh = false
      if (session.latents.size === 0 || session.latentsWeights !== weights) {
        const stored = reuse ? await session.folder.readLatents().catch(() => null) : null
        if (stored && stored.weights === weights && stored.count === n && session.model.spaces.every((s) => stored.latents.get(s.name)?.dim === s.dim)) {
          session.latents = stored.latents
        } else {
          this.status('encoding', 'encoding every item', 0)
          const encoded = await encodeAndStore(session.folder, session.model, dataset, (done) =>
            this.status('encoding', `encoding ${done.toLocaleString('en')} / ${n.toLocaleString('en')}`, done / n, null, false)
          )
          session.latents = encoded.latents
          fresh = true
        }
        session.latentsWeights = weights
        // Weights changed: errors are recomputed when the map is next coloured by them.
        session.reconstructionErrors = null
      }
      // Metrics belong to the weights: kept in memory or stored with the run unless re-encoded.
      const stored = fresh ? null : (session.metrics ?? (await session.folder.readMetrics()))
      if (!stored) this.status('encoding', 'measuring the latent spaces (health, 5-NN class accuracy, log p(x))', null)
      session.metrics =
        stored ??
        (await measureAndStore(session.folder, session.model, dataset, session.latents, (done, total) =>
          this.status(
            'encoding',
            `measuring log p(x): importance-weighted bound, K = ${IWAE_SAMPLES}, ${done} / ${total} held-out items`,
            done / total,
            null,
            false
          )
        ))
      this.emit('model.metrics', session.metrics)
      for (const warning of session.metrics.warnings) this.emit('log', { level: 'warn', message: warning })
      for (const [name, { dim, values }] of session.latents) {
        if (session.abort.signal.aborted) return
        // A projection stored with the run is reused when it was made from these very latents.
        const settings = session.projectionSettings
        const stored = await session.folder.matchingProjection(name, values, settings)
        let projection: LatentProjection
        if (stored) projection = stored
        else {
          this.status('projecting', `UMAP of ${name} (${dim}-d)`, 0)
          projection = await runProjection(
            values,
            dim,
            { nComponents: settings.nComponents, nNeighbors: settings.nNeighbors, minDist: settings.minDist, seed: settings.seed },
            (frame) => {
              this.status('projecting', `UMAP of ${name}: ${frame.phase} ${frame.epoch} / ${frame.totalEpochs}`, frame.fraction, null, false)
              if (frame.embedding) {
                session.maps.set(name, { positions: toThreeD(frame.embedding, settings.nComponents), dimensions: settings.nComponents })
                this.emit('map.update', this.mapData(name, false))
              }
            },
            session.abort.signal
          )
          await session.folder.writeProjection(name, projection)
        }
        session.projections.set(name, projection)
        session.maps.set(name, { positions: toThreeD(projection.embedding, projection.nComponents), dimensions: projection.nComponents })
        this.emit('map.update', this.mapData(name, true))
      }
      this.status('ready', 'ready: click a point to inspect it, or empty space to decode that place')
    } catch (error) {
      if (!session.abort.signal.aborted) this.status('error', `mapping failed: ${(error as Error).message}`)
    } finally {
      session.projecting = false
    }
  }

  /** Reopens a trained run (the app's or the CLI's): its dataset, weights, latents and maps. */
  async openRun(path: string): Promise<ModelSummary> {
    if (this.session?.trainer || this.startingTraining) throw new Error('stop the training before opening another model')
    const folder = new RunFolder(resolve(path))
    const { record, saved, model } = await openStoredRun(folder)
    try {
      await this.openRunDataset(record, saved.document.config)
    } catch (error) {
      model.dispose()
      throw error
    }
    this.disposeSession()
    const session = this.newSession(folder.name, folder, model, null)
    // As it was left: its curves by epoch, and its maps with the UMAP settings they were made with.
    const history = (saved.document.meta.history as EpochSummary[] | undefined) ?? []
    const trainCount = trainingData(this.requireDataset(), record.maxTrainItems).trainIndices.length
    const stepsPerEpoch = Math.max(1, Math.ceil(trainCount / record.options.batchSize))
    session.epochs = history.map((summary) => ({ ...summary, step: summary.epoch * stepsPerEpoch - 1 }))
    const first = model.spaces.find((s) => !s.isImage) ?? model.spaces[0]
    session.projectionSettings = (first && (await folder.storedProjectionSettings(first.name))) ?? session.projectionSettings
    const summary = this.modelSummary(session)
    this.emit('train.started', summary)
    void this.encodeAndProject(session, true)
    return summary
  }

  private requireModel(): Session {
    if (!this.session) throw new Error('train a model first')
    return this.session
  }

  private requireLatents(session: Session, space: string): { dim: number; values: Float32Array } {
    const latents = session.latents.get(space)
    if (!latents) throw new Error(`no encoded items in "${space}" yet: wait for the maps`)
    return latents
  }

  /** An item's (or a pin's) value in every space. */
  private endValues(session: Session, end: PathEnd): Record<string, Float32Array> {
    if ('pin' in end) {
      const pin = session.pins.get(end.pin)
      if (!pin) throw new Error(`there is no pinned point ${end.pin}`)
      return pin.values
    }
    const values: Record<string, Float32Array> = {}
    for (const [name, { dim, values: all }] of session.latents) {
      if (end.item * dim >= all.length) throw new Error(`there is no item ${end.item}`)
      values[name] = all.slice(end.item * dim, (end.item + 1) * dim)
    }
    return values
  }

  private async decodePoint(space: string, position: [number, number, number]): Promise<PinnedPoint> {
    const session = this.requireModel()
    const map = session.maps.get(space)
    const latents = this.requireLatents(session, space)
    if (!map) throw new Error(`no map of "${space}" yet`)
    const { latent, neighbours, weights } = latentAtMapPoint(map.positions, latents.values, latents.dim, position, POINT_DECODE_NEIGHBOURS)
    const context = contextFor(session.model, space, neighbours, weights, session.latents)
    const decoded = await decodeInSpace(session.model, space, latent, context)
    const id = session.nextPin++
    session.pins.set(id, { space, values: { ...context, [space]: latent } })
    return {
      id,
      space,
      position,
      neighbours,
      images: Object.entries(decoded).map(([name, images]) => ({ name: name === 'x' ? 'decoded' : name, image: firstOf(images, `the decoded ${name}`) })),
      method: POINT_DECODE_METHOD
    }
  }

  private async interpolate(args: RequestArgs<'interpolate'>): Promise<InterpolationResult> {
    const session = this.requireModel()
    this.requireLatents(session, args.space)
    const a = this.endValues(session, args.from)
    const b = this.endValues(session, args.to)
    const path = interpolatePath(valueIn(a, args.space), valueIn(b, args.space), args.steps, args.mode)
    // The other spaces move linearly alongside (the SRVAE's z needs its y, the CDVAE's z_l its
    // z_u), so that the path's ends decode exactly as its two end items do.
    const others = (values: Record<string, Float32Array>) => Object.fromEntries(Object.entries(values).filter(([name]) => name !== args.space))
    const context = interpolateContext(others(a), others(b), args.steps)
    const decoded = await decodeInSpace(session.model, args.space, path, context)
    const projection = session.projections.get(args.space)
    const placed = projection ? toThreeD(projection.transform(path), projection.nComponents) : new Float32Array(args.steps * 3)
    return {
      space: args.space,
      mode: args.mode,
      strips: Object.entries(decoded).map(([name, images]) => ({ name, images })),
      pathBase64: float32ToBase64(placed)
    }
  }

  private async generateGrid(args: RequestArgs<'generate.grid'>): Promise<ClassGridResult> {
    const session = this.requireModel()
    const model = session.model
    if (!model.conditionalSpace)
      throw new Error('this model has no class-conditional prior: train a CDVAE, or a VAE/SRVAE with "class prior" ticked, on labelled data')
    const fromItem = args.fromItem === undefined ? undefined : this.endValues(session, { item: args.fromItem })
    const grid = await classGrid(model, { rows: args.rows, temperature: args.temperature, seed: args.seed, fromItem })
    return {
      classNames: this.requireDataset().classNames,
      rows: grid.rows,
      images: grid.images,
      yImages: grid.yImages ?? null,
      space: model.conditionalSpace,
      freeSpace: model.freeSpace
    }
  }

  private async traverse(args: RequestArgs<'traverse'>): Promise<TraversalResult> {
    const session = this.requireModel()
    const dataset = this.requireDataset()
    const space = session.model.spaces.find((s) => s.name === args.space)
    if (!space) throw new Error(`the model has no space "${args.space}"`)
    if (space.isImage) throw new Error(`"${args.space}" is an image space: traverse u or z instead`)
    const item = this.endValues(session, { item: args.index })
    // Informative dimensions first: by the model's own KL per dimension (to its prior, p(z_l|c) for
    // the CDVAE) on the held-out items, once measured; else by the KL to N(0, 1) of (up to) 500
    // training items.
    const measured = session.metrics?.health[args.space]?.klPerDim
    const sample = Array.from(dataset.split.keys())
      .filter((i) => dataset.split[i] === 0)
      .slice(0, 500)
    const kl = measured ? Float32Array.from(measured) : await this.sampleKlPerDimension(session.model, sample, args.space)
    const dimensions = Array.from(kl, (value, index) => ({ index, kl: value }))
      .sort((p, q) => q.kl - p.kl)
      .slice(0, args.dimensions)
    const values = Array.from({ length: args.steps }, (_, i) => -args.span + (2 * args.span * i) / (args.steps - 1))
    const context = Object.fromEntries(Object.entries(item).filter(([name]) => name !== args.space))
    // Under a class prior a dimension moves around the item's own value; under N(0, I) it is set.
    const mode = args.space === session.model.conditionalSpace ? 'offset' : 'set'
    const images = await traversalGrid(
      session.model,
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
  private async exportRun(formats: ExportFormatName[], items?: Int32Array): Promise<{ dir: string; files: string[] }> {
    const session = this.requireModel()
    const dataset = this.requireDataset()
    if (session.latents.size === 0) throw new Error('the items are not encoded yet: export once the maps are being made')
    const maps = new Map<string, { components: number; values: Float32Array }>()
    for (const [space, { positions, dimensions }] of session.maps) {
      maps.set(space, { components: dimensions, values: dimensions === 3 ? positions : positions.filter((_, i) => i % 3 !== 2) })
    }
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)
    const dir = session.folder.exportsDir(items ? `selection-${stamp}` : undefined)
    const model = formats.includes('model') ? { model: session.model, runJson: await session.folder.recordText() } : undefined
    const files = await writeExports(dir, { dataset, latents: session.latents, maps, model, items }, formats)
    const what = items ? `${items.length.toLocaleString('en')} selected items` : formats.join(', ')
    this.emit('log', { level: 'info', message: `exported ${files.length} files (${what}) to ${dir}` })
    return { dir, files }
  }

  private listOwnRuns(): Promise<RunListing[]> {
    return listRuns(this.runsDir, this.session?.trainer ? this.session.folder.dir : null)
  }

  /** KL per dimension of one space (to N(0, 1)) over some items, for a model not yet measured. */
  private async sampleKlPerDimension(model: VaeFamilyModel, items: number[], space: string): Promise<Float32Array> {
    const dataset = this.requireDataset()
    const { width, height, channels } = dataset
    const k = width * height * channels
    const pixels = new Float32Array(items.length * k)
    items.forEach((index, j) => pixels.set(dataset.pixels.subarray(index * k, (index + 1) * k), j * k))
    const x = tf.tidy(() => tf.tensor4d(pixels, [items.length, height, width, channels]).div(255) as tf.Tensor4D)
    try {
      const kl = (await klPerDimension(model, x))[space]
      if (!kl) throw new Error(`"${space}" has no posterior to measure`)
      return kl
    } finally {
      x.dispose()
    }
  }

  mapData(space: string, final: boolean): MapData {
    const dataset = this.requireDataset()
    const map = this.session?.maps.get(space)
    if (!map) throw new Error(`no map of "${space}" yet`)
    const labels = dataset.labels ?? new Int32Array(dataset.split.length).fill(-1)
    const errors = this.session?.reconstructionErrors
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

  private itemTensor(index: number): tf.Tensor4D {
    const dataset = this.requireDataset()
    const { width, height, channels } = dataset
    const k = width * height * channels
    return tf
      .tensor4d(dataset.pixels.subarray(index * k, (index + 1) * k), [1, height, width, channels])
      .toFloat()
      .div(255) as tf.Tensor4D
  }

  private itemImage(index: number): ImagePayload {
    const { width, height, channels, pixels } = this.requireDataset()
    const k = width * height * channels
    return { width, height, channels, base64: bytesToBase64(pixels.subarray(index * k, (index + 1) * k)) }
  }

  /** `index` when the open dataset has that item. */
  private requireItem(index: number): number {
    const count = this.requireDataset().split.length
    if (index >= count) throw new Error(`there is no item ${index}; the dataset has ${count}`)
    return index
  }

  async inspect(index: number): Promise<ItemView> {
    const dataset = this.requireDataset()
    this.requireItem(index)
    const images = [{ name: 'original', image: this.itemImage(index) }]
    let predictedLabel: string | null = null
    const model = this.session?.model
    if (model) {
      const { decoded, predicted } = tf.tidy(() => {
        const x = this.itemTensor(index)
        const scores = model.classLogLikelihoods(x)
        return { decoded: model.reconstruct(x), predicted: scores ? [scores.argMax(1)] : [] }
      })
      try {
        images.push({ name: 'reconstruction', image: await toImagePayload(decoded.x) })
        for (const [name, t] of Object.entries(decoded)) if (name !== 'x') images.push({ name, image: await toImagePayload(t) })
        const [scores] = predicted
        if (scores) predictedLabel = dataset.classNames[(await scores.data())[0] ?? -1] ?? null
      } finally {
        tf.dispose([...Object.values(decoded), ...predicted])
      }
    }
    const neighbours: ItemView['neighbours'] = []
    if (this.session) {
      for (const [space, { dim, values }] of this.session.latents) {
        const items = nearestNeighbours(values, dim, index, 8).map((i) => ({ index: i, image: this.itemImage(i) }))
        neighbours.push({ space, items })
      }
    }
    const label = dataset.labels ? (dataset.classNames[dataset.labels[index] ?? -1] ?? null) : null
    return {
      index,
      name: dataset.itemNames[index] ?? `#${index}`,
      label,
      split: dataset.split[index] ? 'heldout' : 'train',
      images,
      predictedLabel,
      neighbours
    }
  }

  dispose(): void {
    this.disposeSession()
  }
}

/** The maps are drawn in 3D: a 2D embedding gets a zero third coordinate. */
function toThreeD(embedding: Float32Array, components: 2 | 3): Float32Array {
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
