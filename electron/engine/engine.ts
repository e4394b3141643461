// The engine: datasets, training, encoding, decoding, projection and run files. It knows nothing
// of Electron or of WebSockets: a transport hands it validated request messages and forwards the
// events it emits. It runs as a child process of the Electron main process, of the browser-mode
// host, or in-process in tests.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import * as tf from '@tensorflow/tfjs'
import {
  bytesToBase64,
  float32ToBase64,
  int32ToBase64,
  type DatasetSummary,
  type EngineInfo,
  type EnginePhase,
  type EventName,
  type Events,
  type ImagePayload,
  type ItemView,
  type MapData,
  type ModelSummary,
  type RequestArgs,
  type RequestMessage,
  type RequestName,
  type RequestResult,
  type TrainArgs
} from '../common/contract'
import { createModel, type VaeFamilyModel } from '../../models/index'
import { serializeCheckpoint } from '../../models/checkpoint'
import { defaultTrainOptions, Trainer, TrainingCancelledError, TrainingDivergedError } from '../../models/train'
import { selectBackend, type BackendPreference, type BackendSelection } from './backend'
import { defaultDatasetPath, loadDataset, loadDefaultDataset, type ImageDataset } from './datasets/index'
import { LatentProjection, type ProjectionProgress } from './projection'
import { encodeAll, modelConfigFor, trainingData, writeLatents } from './runs'
import { loadLatestCheckpoint, saveCheckpoint, writeFileAtomic } from './storage'

export const ENGINE_VERSION = '0.1.0'

export interface EngineOptions {
  /** Where runs (checkpoints, latents, projections) are written. */
  dataDir: string
  emit<E extends EventName>(name: E, payload: Events[E]): void
  backend?: BackendPreference
}

interface Session {
  runId: string
  runDir: string
  model: VaeFamilyModel
  trainer: Trainer | null
  /** Posterior means per space, n * dim, in item order. */
  latents: Map<string, { dim: number; values: Float32Array }>
  /** 3D positions per space, n * 3. */
  maps: Map<string, Float32Array>
  abort: AbortController
}

type Handlers = { [N in RequestName]: (args: RequestArgs<N>) => Promise<RequestResult<N>> }

export class Engine {
  private readonly backendReady: Promise<BackendSelection>
  private backend: BackendSelection | null = null
  private dataset: ImageDataset | null = null
  private session: Session | null = null
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
    this.emit('status', { phase, message, progress, etaSeconds, backend: this.backend?.backend ?? 'starting' })
  }

  private readonly handlers: Handlers = {
    'engine.info': async () => this.info(),
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
    'dialog.chooseFolder': async () => {
      throw new Error('the folder dialog is only available in the desktop app; type a path instead')
    }
  }

  private info(): EngineInfo {
    const backend = this.backend as BackendSelection
    const fashion = defaultDatasetPath()
    return {
      backend: backend.backend,
      backends: backend.choices,
      version: ENGINE_VERSION,
      defaultDatasetDescription: fashion ? `Fashion-MNIST (${fashion})` : 'generated shapes (Fashion-MNIST is not installed)'
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
      report: dataset.report
    }
  }

  async openDataset(path: string | null, size?: number): Promise<DatasetSummary> {
    if (this.session?.trainer) throw new Error('stop the training before opening another dataset')
    this.status('loading', path ? `loading ${path}` : 'loading the built-in dataset', 0)
    const onProgress = (p: { done: number; total: number; etaSeconds: number | null }) => {
      this.emit('dataset.progress', p)
      this.status('loading', `loading images ${p.done.toLocaleString('en')} / ${p.total.toLocaleString('en')}`, p.total ? p.done / p.total : null, p.etaSeconds, false)
    }
    try {
      const dataset = path ? await loadDataset(path, { size }, onProgress) : await loadDefaultDataset(onProgress)
      this.dataset = dataset
      this.disposeSession()
      const summary = this.summary(dataset)
      this.emit('dataset.loaded', summary)
      this.status('idle', `${summary.name}: ${summary.itemCount.toLocaleString('en')} items loaded in ${dataset.report.seconds.toFixed(1)} s`)
      return summary
    } catch (error) {
      this.status('error', (error as Error).message)
      throw error
    }
  }

  private disposeSession(): void {
    if (!this.session) return
    this.session.abort.abort(new Error('replaced'))
    this.session.model.dispose()
    this.session.trainer?.optimizer.dispose()
    this.session = null
  }

  async startTraining(args: TrainArgs): Promise<ModelSummary> {
    const dataset = this.requireDataset()
    if (this.session?.trainer) throw new Error('a training run is already going; cancel it first')
    const data = trainingData(dataset, args.maxTrainItems)
    const defaults = defaultTrainOptions(data.trainIndices.length)
    const options = {
      ...defaults,
      epochs: args.epochs ?? defaults.epochs,
      batchSize: args.batchSize ?? defaults.batchSize,
      learningRate: args.learningRate ?? defaults.learningRate,
      seed: args.seed ?? defaults.seed
    }
    const config = modelConfigFor(dataset, args.family, { seed: options.seed, latentDim: args.latentDim })
    this.disposeSession()
    const model = createModel(config)
    const runId = `${new Date().toISOString().replace(/[:.]/g, '-')}-${args.family}`
    const runDir = join(this.options.dataDir, 'runs', runId)
    await mkdir(runDir, { recursive: true })
    const trainer = new Trainer(model, data, options)
    const session: Session = { runId, runDir, model, trainer, latents: new Map(), maps: new Map(), abort: new AbortController() }
    this.session = session
    const summary: ModelSummary = {
      runId,
      family: args.family,
      spaces: model.spaces.map((s) => ({ ...s })),
      conditional: model.conditionalSpace !== null,
      parameterCount: model.parameters.count()
    }
    await writeFileAtomic(join(runDir, 'run.json'), JSON.stringify({ runId, config, options, dataset: dataset.report.source }, null, 1))
    this.emit('train.started', summary)
    void this.runSession(session, options.epochs)
    return summary
  }

  private async runSession(session: Session, epochs: number): Promise<void> {
    const trainer = session.trainer as Trainer
    const history: unknown[] = []
    const checkpoint = async () => {
      const serialized = await serializeCheckpoint(session.model, trainer.optimizer, { ...trainer.position }, { history })
      await saveCheckpoint(session.runDir, serialized, trainer.position.globalStep)
    }
    this.status('training', 'training: first steps', 0)
    try {
      await trainer.run({
        onStep: (p) => {
          this.emit('train.step', {
            epoch: p.epoch,
            epochs: p.epochs,
            stepInEpoch: p.stepInEpoch,
            stepsPerEpoch: p.stepsPerEpoch,
            loss: p.loss,
            terms: p.terms,
            itemsPerSecond: p.itemsPerSecond,
            etaSeconds: p.etaSeconds
          })
          const done = (p.epoch * p.stepsPerEpoch + p.stepInEpoch) / (p.epochs * p.stepsPerEpoch)
          const label = trainer.isPaused ? 'training paused' : `training epoch ${p.epoch + 1}/${p.epochs} · loss ${p.loss.toFixed(1)} · ${Math.round(p.itemsPerSecond)} items/s`
          this.status('training', label, done, p.etaSeconds, false)
        },
        onEpoch: (summary) => {
          history.push(summary)
          this.emit('train.epoch', summary)
        },
        onCheckpoint: checkpoint
      })
      session.trainer = null
      this.emit('train.finished', { runId: session.runId, outcome: 'completed', message: `trained ${epochs} epochs` })
      await this.encodeAndProject(session)
    } catch (error) {
      session.trainer = null
      if (error instanceof TrainingCancelledError) {
        this.emit('train.finished', { runId: session.runId, outcome: 'cancelled', message: 'training cancelled; the last checkpoint is kept' })
        this.status('idle', 'training cancelled')
        return
      }
      let message = (error as Error).message
      if (error instanceof TrainingDivergedError) {
        const restored = await this.rollBack(session)
        message += restored ? '; the model was rolled back to its last good checkpoint' : '; no earlier checkpoint to roll back to'
      }
      this.emit('train.finished', { runId: session.runId, outcome: 'failed', message })
      this.status('error', message)
    } finally {
      trainer.optimizer.dispose()
    }
  }

  private async rollBack(session: Session): Promise<boolean> {
    const saved = await loadLatestCheckpoint(session.runDir)
    if (!saved) return false
    const named = tf.io.decodeWeights(saved.weights.slice().buffer as ArrayBuffer, saved.document.weightsManifest[0].weights)
    session.model.parameters.assign(named)
    tf.dispose(Object.values(named))
    return true
  }

  /** Encodes every item (posterior means) and projects each latent space to 3D, streaming frames. */
  async encodeAndProject(session: Session): Promise<void> {
    const dataset = this.requireDataset()
    const n = dataset.split.length
    this.status('encoding', 'encoding every item', 0)
    session.latents = await encodeAll(session.model, dataset, (done) =>
      this.status('encoding', `encoding ${done.toLocaleString('en')} / ${n.toLocaleString('en')}`, done / n, null, false)
    )
    await writeLatents(session.runDir, session.latents, n)
    for (const [name, { dim, values }] of session.latents) {
      if (session.abort.signal.aborted) return
      this.status('projecting', `UMAP of ${name} (${dim}-d)`, 0)
      const projection = await LatentProjection.fit(
        values,
        dim,
        { nComponents: 3 },
        (progress: ProjectionProgress) => {
          this.status('projecting', `UMAP of ${name}: epoch ${progress.epoch} / ${progress.totalEpochs}`, progress.epoch / progress.totalEpochs, null, false)
          if (progress.embedding) {
            session.maps.set(name, progress.embedding)
            this.emit('map.update', this.mapData(name, false))
          }
        },
        session.abort.signal
      )
      session.maps.set(name, projection.embedding)
      this.emit('map.update', this.mapData(name, true))
    }
    this.status('ready', 'ready: click a point to inspect it')
  }

  mapData(space: string, final: boolean): MapData {
    const dataset = this.requireDataset()
    const positions = this.session?.maps.get(space)
    if (!positions) throw new Error(`no map of "${space}" yet`)
    const labels = dataset.labels ?? new Int32Array(dataset.split.length).fill(-1)
    return {
      space,
      positionsBase64: float32ToBase64(positions),
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
    return tf.tensor4d(dataset.pixels.subarray(index * k, (index + 1) * k), [1, height, width, channels]).toFloat().div(255) as tf.Tensor4D
  }

  inspect(index: number): ItemView {
    const dataset = this.requireDataset()
    if (index >= dataset.split.length) throw new Error(`there is no item ${index}; the dataset has ${dataset.split.length}`)
    const { width, height, channels } = dataset
    const k = width * height * channels
    const original: ImagePayload = { width, height, channels, base64: bytesToBase64(dataset.pixels.subarray(index * k, (index + 1) * k)) }
    const images = [{ name: 'original', image: original }]
    let predictedLabel: string | null = null
    const model = this.session?.model
    if (model) {
      tf.tidy(() => {
        const x = this.itemTensor(index)
        const decoded = model.reconstruct(x)
        images.push({ name: 'reconstruction', image: toImagePayload(decoded.x) })
        for (const [name, t] of Object.entries(decoded)) if (name !== 'x') images.push({ name, image: toImagePayload(t) })
        const scores = model.classLogLikelihoods(x)
        if (scores) predictedLabel = dataset.classNames[scores.argMax(1).dataSync()[0]] ?? null
      })
    }
    const label = dataset.labels ? dataset.classNames[dataset.labels[index]] ?? null : null
    return {
      index,
      name: dataset.itemNames[index] ?? `#${index}`,
      label,
      split: dataset.split[index] ? 'heldout' : 'train',
      images,
      predictedLabel
    }
  }

  dispose(): void {
    this.disposeSession()
  }
}

/** [1, h, w, c] in [0, 1] -> uint8 bytes. */
export function toImagePayload(t: tf.Tensor4D): ImagePayload {
  const [, height, width, channels] = t.shape
  const bytes = tf.tidy(() => t.slice([0, 0, 0, 0], [1, height, width, channels]).mul(255).round().clipByValue(0, 255).dataSync())
  return { width, height, channels, base64: bytesToBase64(Uint8Array.from(bytes)) }
}
