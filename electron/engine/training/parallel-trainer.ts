// Synchronous data-parallel training over worker threads, for the wasm and cpu backends: each runs
// on one thread in Node, so the in-process Trainer uses one core however many the machine has.
// Each worker (training/worker.ts) holds a full replica of the model and its own Adam; per step each
// computes the gradient of its share of the batch, the workers pool them through shared memory
// and each applies the same average (weighted by item count, so the result is the full batch's
// mean gradient). The replicas therefore stay identical without sending weights, and this thread only
// pulls worker 0's weights (and Adam state, for checkpoints) into `this.model` / `this.optimizer`
// when run() evaluates, checkpoints or stops, so that everything built on Trainer works unchanged.
// tfjs-node and tfjs-node-gpu keep the in-process Trainer: they are multithreaded or on a GPU.
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import * as tf from '@tensorflow/tfjs'
import type { TrainingData } from '../../../models/data'
import {
  combineEvaluation,
  evaluationChunks,
  Trainer,
  type ChunkEvaluation,
  type Evaluation,
  type TrainingCallbacks,
  type TrainOptions
} from '../../../models/train'
import type { VaeFamilyModel } from '../../../models/types'
import { assignFlatWeights, createGradientExchange, failExchange, flattenWeights, getOptimizerState, setOptimizerState } from './replica'
import type { SharedTrainingData, TrainWorkerReply, TrainWorkerRequest } from './worker'
import { elementAt } from '../../../models/arrays'
import { WorkerChannel } from '../workers/channel'
import { builtWorkerPath } from '../worker-path'

export interface ParallelTrainerOptions {
  /** Worker threads (replicas); default: 2, or fewer on a one-core machine. */
  workers?: number
  /** Makes one worker; default: the built out/main/train-worker.js (tests run the TypeScript source). */
  spawn?: () => Worker
}

/** The built worker beside this bundle (out/main/train-worker.js), or null when running from sources. */
const builtTrainWorkerPath = (): string | null => builtWorkerPath('train-worker', __dirname)

export const defaultWorkerCount = (): number => Math.min(2, availableParallelism())

/**
 * Per-half seeds: worker 0 uses the step's own seed (its noise is what a one-thread step would
 * draw for those items); the others are offset far beyond any step seed so that no two halves,
 * nor the models' derived seeds (2s, 2s + 1), ever share a noise stream.
 */
const WORKER_SEED_OFFSET = 2 ** 40

/** A training worker: its requests and replies, matched by id. */
type ReplicaThread = WorkerChannel<TrainWorkerRequest, TrainWorkerReply>

/** `thread`'s reply to `request`, checked to be of the kind `expected`. */
async function ask<T extends TrainWorkerReply['type']>(
  thread: ReplicaThread,
  expected: T,
  request: TrainWorkerRequest
): Promise<Extract<TrainWorkerReply, { type: T }>> {
  const reply = await thread.request(request)
  if (reply.type !== expected) throw new Error(`training worker: a "${reply.type}" reply to a "${request.type}" request`)
  return reply as Extract<TrainWorkerReply, { type: T }>
}

/** A view of `array`'s bytes in a SharedArrayBuffer (the array itself when it already is one). */
function shared<T extends Uint8Array | Int32Array>(array: T, make: (buffer: SharedArrayBuffer) => T): T {
  if (array.buffer instanceof SharedArrayBuffer) return array
  const copy = make(new SharedArrayBuffer(array.byteLength))
  copy.set(array as never)
  return copy
}

export class ParallelTrainer extends Trainer {
  readonly workerCount: number
  private readonly spawn: () => Worker
  private threads: ReplicaThread[] | null = null
  private starting: Promise<ReplicaThread[]> | null = null
  private sharedData: SharedTrainingData | null = null
  /** Whether worker 0 holds weights (and Adam state) that this.model (this.optimizer) lacks. */
  private weightsBehind = false
  private optimizerBehind = false
  /** The backend the workers run, once started. */
  workerBackend: string | null = null

  constructor(model: VaeFamilyModel, data: TrainingData, options: TrainOptions, parallel: ParallelTrainerOptions = {}) {
    super(model, data, options)
    this.workerCount = Math.max(1, parallel.workers ?? defaultWorkerCount())
    const spawn = parallel.spawn
    if (spawn) this.spawn = spawn
    else {
      const path = builtTrainWorkerPath()
      if (!path) throw new Error('the training worker is not built (out/main/train-worker.js); use Trainer, or pass spawn')
      this.spawn = () => new Worker(path)
    }
  }

  /** What the status line says: "2 wasm threads". */
  get description(): string {
    const backend = this.workerBackend ?? tf.getBackend()
    return `${this.workerCount} ${backend} thread${this.workerCount === 1 ? '' : 's'}`
  }

  /**
   * Starts the workers from this.model's weights and this.optimizer's state (run() does this; call
   * it to time steps without start-up). The dataset goes to them once, as SharedArrayBuffers.
   */
  async start(): Promise<void> {
    await this.replicas()
  }

  private replicas(): Promise<ReplicaThread[]> {
    if (this.threads) return Promise.resolve(this.threads)
    this.starting ??= this.launch().finally(() => (this.starting = null))
    return this.starting
  }

  private async launch(): Promise<ReplicaThread[]> {
    const { shape, pixels, labels, numClasses, binarize } = this.data
    // One copy per run of the pixels (n * h * w * c bytes: 55 MB for Fashion-MNIST) and labels in
    // SharedArrayBuffers, which every worker reads in place: per step only the indices travel.
    // Pixels that already live in a SharedArrayBuffer are not copied at all.
    this.sharedData ??= {
      shape,
      pixels: shared(pixels, (b) => new Uint8Array(b)),
      labels: labels ? shared(labels, (b) => new Int32Array(b)) : null,
      numClasses,
      binarize: binarize ?? false
    }
    const weights = flattenWeights(this.model.parameters)
    const state = await getOptimizerState(this.optimizer)
    const exchange = createGradientExchange(this.workerCount, weights.length, this.model.parameters.list().length)
    // A worker that dies releases the others from the step's barrier (they then fail too).
    const threads = Array.from(
      { length: this.workerCount },
      () => new WorkerChannel<TrainWorkerRequest, TrainWorkerReply>(this.spawn(), 'training worker', { onFailure: () => failExchange(exchange) })
    )
    try {
      const ready = await Promise.all(
        threads.map((thread, rank) =>
          ask(thread, 'ready', {
            type: 'init',
            backend: tf.getBackend(),
            config: this.model.config,
            learningRate: this.options.learningRate,
            data: this.sharedData as SharedTrainingData,
            weights,
            optimizer: state.slots.length > 0 ? state : null,
            exchange,
            rank
          })
        )
      )
      this.workerBackend = elementAt(ready, 0).backend
    } catch (error) {
      await Promise.all(threads.map((t) => t.terminate()))
      throw error
    }
    this.threads = threads
    this.weightsBehind = false
    this.optimizerBehind = false
    return threads
  }

  /** One synchronous data-parallel step: the batch split in contiguous shares, one per worker. */
  override async trainStep(indices: Int32Array, seed: number, step?: number): Promise<Record<string, number>> {
    const threads = await this.replicas()
    const n = indices.length
    // Contiguous shares, the larger ones first. A share can be empty (a last batch smaller than the
    // worker count): its worker computes nothing but still applies the update with the others.
    const shares = threads.map((_, k) => indices.subarray(Math.ceil((k * n) / threads.length), Math.ceil(((k + 1) * n) / threads.length)))
    const replies = await Promise.all(
      shares.map((share, k) => ask(elementAt(threads, k), 'stepped', { type: 'step', indices: share.slice(), seed: seed + k * WORKER_SEED_OFFSET, step }))
    )
    // The full batch's means = the shares' means weighted by their item counts. A NaN or infinite
    // term stops run(); the workers did not apply that step, so the replicas (and this.model after
    // the stop) keep the last good weights.
    const values: Record<string, number> = {}
    for (const reply of replies) {
      for (const [name, v] of Object.entries(reply.terms)) values[name] = (values[name] ?? 0) + (v * reply.count) / n
    }
    this.weightsBehind = true
    this.optimizerBehind = true
    return values
  }

  /** Pulls worker 0's weights (and Adam state) into this.model (this.optimizer) when they are behind. */
  protected override async syncModel(withOptimizer: boolean): Promise<void> {
    const first = this.threads?.[0]
    if (!first?.alive) return
    if (!this.weightsBehind && !(withOptimizer && this.optimizerBehind)) return
    const state = await ask(first, 'state', { type: 'state', withOptimizer })
    assignFlatWeights(this.model.parameters, state.weights)
    this.weightsBehind = false
    if (state.optimizer) {
      // Adam matches slots to variables by position; name them after this model's variables (each
      // store has its own prefix) so that a checkpoint reads the same as the in-process trainer's.
      const names = this.model.parameters.trainable().map((v) => v.name)
      const slotNames = state.optimizer.slots.length === 2 * names.length ? [...names.map((n) => `${n}/m`), ...names.map((n) => `${n}/v`)] : undefined
      await setOptimizerState(this.optimizer, state.optimizer, slotNames)
      this.optimizerBehind = false
    }
  }

  /**
   * The held-out evaluation on the workers: evaluate()'s chunks dealt out in turn, combined here
   * in chunk order, so the figures are exactly what evaluate() on this thread's model gives.
   */
  protected override async evaluateHeldOut(seed: number): Promise<Evaluation> {
    const threads = this.threads
    if (!threads) return super.evaluateHeldOut(seed)
    const indices = this.data.heldOutIndices
    const chunks = evaluationChunks(indices.length, 500)
    const parts = await Promise.all(
      threads.map((thread, k) => {
        const mine = chunks.filter((_, c) => c % threads.length === k)
        return mine.length ? ask(thread, 'evaluation', { type: 'evaluate', indices, chunks: mine, seed }) : null
      })
    )
    // Worker k evaluated chunks k, k + T, k + 2T...: chunk c is its (c / T)th.
    const results: ChunkEvaluation[] = chunks.map((_, c) => {
      const part = elementAt(parts, c % threads.length)
      if (!part) throw new Error(`training worker ${c % threads.length} was given no chunks to evaluate`)
      return elementAt(part.chunks, Math.floor(c / threads.length))
    })
    return combineEvaluation(results, this.data)
  }

  /** The weights of every replica (for tests: they must be identical). */
  async replicaWeights(): Promise<Float32Array[]> {
    const threads = await this.replicas()
    return Promise.all(threads.map(async (thread) => (await ask(thread, 'state', { type: 'state', withOptimizer: false })).weights))
  }

  /**
   * As Trainer.run, on the workers. Whichever way it ends (done, cancelled, diverged), this.model
   * and this.optimizer end up with the replicas' state and the workers are stopped; a later run()
   * starts fresh ones from there.
   */
  override async run(callbacks: TrainingCallbacks = {}): Promise<void> {
    await this.start()
    try {
      await super.run(callbacks)
    } finally {
      await this.stop()
    }
  }

  /** Brings this.model and this.optimizer up to date and stops the workers. */
  async stop(): Promise<void> {
    const threads = this.threads
    if (!threads) return
    try {
      await this.syncModel(true)
    } finally {
      this.threads = null
      // The shared copy of the pixels goes with the workers (a later run() makes a new one).
      this.sharedData = null
      await Promise.all(threads.map((t) => t.terminate()))
    }
  }

  override dispose(): void {
    super.dispose()
    const threads = this.threads
    this.threads = null
    if (threads) for (const t of threads) void t.terminate()
  }
}

/**
 * The trainer for this backend: data-parallel over worker threads for wasm and cpu when the machine
 * has two or more cores and the worker is built (not under vitest, which runs the sources), the
 * in-process Trainer otherwise. CARTOGRAPHER_TRAIN_WORKERS=1 forces the in-process one.
 */
export function createTrainer(model: VaeFamilyModel, data: TrainingData, options: TrainOptions, backend: string): Trainer {
  const requested = Number(process.env.CARTOGRAPHER_TRAIN_WORKERS ?? '') || defaultWorkerCount()
  const workers = Math.min(requested, availableParallelism())
  if ((backend === 'wasm' || backend === 'cpu') && workers >= 2 && builtTrainWorkerPath()) {
    return new ParallelTrainer(model, data, options, { workers })
  }
  return new Trainer(model, data, options)
}

/** "2 wasm threads", "1 wasm thread", "tfjs-node": what trains, for the status line and the CLI. */
export function describeTrainer(trainer: Trainer, backend: string): string {
  if (trainer instanceof ParallelTrainer) return trainer.description
  return backend === 'wasm' || backend === 'cpu' ? `1 ${backend} thread` : backend
}
