// The engine: datasets, training, encoding, decoding, projection and run files. It knows nothing
// of Electron or of WebSockets: a transport hands it validated request messages and forwards the
// events it emits. It runs as a child process of the Electron main process, of the browser-mode
// host, or in-process in tests.
import { existsSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { isAbsolute, join, resolve } from 'node:path'
import * as tf from '@tensorflow/tfjs'
import {
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
  type ItemView,
  type ModelSummary,
  type RequestArgs,
  type RequestMessage,
  type RequestName,
  type RequestResult,
  type TrainArgs
} from '../common/contract'
import { defaultModelConfig, FAMILY_DEFAULTS, MODEL_FAMILIES, type ModelConfig, type VaeFamilyModel } from '../../models/index'
import { defaultEpochs, type Trainer, type EpochSummary } from '../../models/train'
import { IWAE_SAMPLES } from '../../models/iwae'
import { selectBackend, type BackendPreference, type BackendSelection } from './backend/select'
import { runDoctor } from './backend/doctor-process'
import { adapterName } from './backend/webgpu'
import { describeTrainer } from './training/parallel-trainer'
import { defaultDatasetPath, loadDataset, loadDefaultDataset, type ImageDataset } from './datasets/index'
import type { LatentProjection } from './projection/index'
import { ancestralSamples, nearestNeighbours, reconstructionErrors, toImagePayload } from './explorer'
import { runProjection } from './projection/runner'
import { itemImage, itemTensor, requireItem } from './datasets/items'
import { thumbnailAtlas } from './datasets/thumbnails'
import { OpenModel, toThreeD } from './open-model'
import { compareRun, isGeneratedSource, listRuns, ownRunFolder, renameRun } from './run/catalog'
import { checkDatasetFits, trainingData } from './run/config'
import { RunFolder, type RunRecord } from './run/folder'
import { weightsDigest } from './run/measure'
import { encodeAndStore, measureAndStore, openStoredRun, readResumable, resumeRun, startRun, type TrainingRun } from './run/session'

export const ENGINE_VERSION = '0.1.0'

export interface EngineOptions {
  /** Where runs (checkpoints, latents, projections) are written. */
  dataDir: string
  emit<E extends EventName>(name: E, payload: Events[E]): void
  backend?: BackendPreference
}

type Handlers = { [N in RequestName]: (args: RequestArgs<N>) => Promise<RequestResult<N>> }

export class Engine {
  private readonly backendReady: Promise<BackendSelection>
  private backend: BackendSelection | null = null
  private dataset: ImageDataset | null = null
  private session: OpenModel | null = null
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
    'map.get': async (args) => this.requireModel().mapData(args.space, true),
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
    'dataset.item': async (args) => {
      const dataset = this.requireDataset()
      return itemImage(dataset, requireItem(dataset, args.index))
    },
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
      for (const space of session.maps.keys()) this.emit('map.update', session.mapData(space, true))
      return { computed: true }
    },
    'maps.refresh': async (args) => {
      const session = this.requireModel()
      if (session.projecting) return { started: false }
      if (args.projection) session.projectionSettings = { ...args.projection }
      void this.encodeAndProject(session)
      return { started: true }
    },
    'decode.point': async (args) => this.requireModel().decodePoint(args.space, args.position),
    interpolate: async (args) => this.requireModel().interpolate(args),
    'generate.grid': async (args) => this.requireModel().generateGrid(args),
    'generate.samples': async (args) => {
      const session = this.requireModel()
      const samples = await ancestralSamples(session.model, args.count, args.temperature, args.seed)
      return { strips: Object.entries(samples).map(([name, images]) => ({ name, images })) }
    },
    traverse: async (args) => this.requireModel().traverse(args),
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
          latentShares: { ...FAMILY_DEFAULTS[family].latentShares },
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

  private newSession(runId: string, folder: RunFolder, model: VaeFamilyModel, trainer: Trainer | null): OpenModel {
    this.session = new OpenModel(runId, folder, model, trainer, this.requireDataset())
    return this.session
  }

  private modelSummary(session: OpenModel): ModelSummary {
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
    this.session?.dispose()
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
  private async runSession(session: OpenModel, run: TrainingRun): Promise<void> {
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
  async encodeAndProject(session: OpenModel, reuse = false): Promise<void> {
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
          const encoded = await encodeAndStore(
            session.folder,
            session.model,
            dataset,
            (done) => this.status('encoding', `encoding ${done.toLocaleString('en')} / ${n.toLocaleString('en')}`, done / n, null, false),
            weights
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
                this.emit('map.update', session.mapData(name, false))
              }
            },
            session.abort.signal
          )
          await session.folder.writeProjection(name, projection)
        }
        session.projections.set(name, projection)
        session.maps.set(name, { positions: toThreeD(projection.embedding, projection.nComponents), dimensions: projection.nComponents })
        this.emit('map.update', session.mapData(name, true))
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

  private requireModel(): OpenModel {
    if (!this.session) throw new Error('train a model first')
    return this.session
  }

  /** The open model's exports (OpenModel.export), said in the log. */
  private async exportRun(formats: ExportFormatName[], items?: Int32Array): Promise<{ dir: string; files: string[] }> {
    const { dir, files } = await this.requireModel().export(formats, items)
    const what = items ? `${items.length.toLocaleString('en')} selected items` : formats.join(', ')
    this.emit('log', { level: 'info', message: `exported ${files.length} files (${what}) to ${dir}` })
    return { dir, files }
  }

  private listOwnRuns(): Promise<RunListing[]> {
    return listRuns(this.runsDir, this.session?.trainer ? this.session.folder.dir : null)
  }

  async inspect(index: number): Promise<ItemView> {
    const dataset = this.requireDataset()
    requireItem(dataset, index)
    const images = [{ name: 'original', image: itemImage(dataset, index) }]
    let predictedLabel: string | null = null
    const model = this.session?.model
    if (model) {
      const { decoded, predicted } = tf.tidy(() => {
        const x = itemTensor(dataset, index)
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
        const items = nearestNeighbours(values, dim, index, 8).map((i) => ({ index: i, image: itemImage(dataset, i) }))
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
