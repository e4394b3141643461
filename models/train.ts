// The training loop: Adam on the negative ELBO, held-out evaluation of every term each epoch,
// progress events, pause / resume / cancel, checkpoints at intervals, and a guard that stops on
// NaN or Inf naming the term that blew up. No file system here: checkpoints go to a callback.
import * as tf from '@tensorflow/tfjs'
import { readAndDispose, readScalarsAndDispose } from './readback'
import { makeBatch, shuffled, type TrainingData } from './data'
import { FAMILY_DEFAULTS } from './families'
import type { ModelFamily, VaeFamilyModel } from './types'

export interface TrainOptions {
  epochs: number
  batchSize: number
  learningRate: number
  seed: number
  /** Write a checkpoint every this many steps (and at every epoch's end). */
  checkpointEverySteps: number
}

export interface TrainingPosition {
  /** Epochs fully done. */
  epoch: number
  /** Steps done within the current epoch. */
  stepInEpoch: number
  globalStep: number
}

export interface StepProgress extends TrainingPosition {
  epochs: number
  stepsPerEpoch: number
  loss: number
  terms: Record<string, number>
  itemsPerSecond: number
  etaSeconds: number | null
}

export interface EpochSummary {
  epoch: number
  train: Record<string, number>
  heldOut: Record<string, number>
  /** Per latent space, on the held-out items: is the space used? */
  health: LatentHealth
  seconds: number
}

/**
 * Whether a latent space is used (Burda et al. 2016's "active units"): a dimension is active when
 * the variance over items of its posterior mean exceeds ACTIVE_UNIT_THRESHOLD.
 */
export interface SpaceHealth {
  /** Mean KL per dimension, nats (for the SRVAE's z: to its conditional prior p(z | y, u)). */
  klPerDim: number[]
  /** Variance over items of each dimension's posterior mean. */
  meanVariance: number[]
  activeUnits: number
}

export type LatentHealth = Record<string, SpaceHealth>

export const ACTIVE_UNIT_THRESHOLD = 0.01

export interface TrainingCallbacks {
  onStep?(progress: StepProgress): void
  onEpoch?(summary: EpochSummary): void
  onCheckpoint?(position: TrainingPosition): Promise<void>
}

export class TrainingDivergedError extends Error {
  constructor(
    readonly term: string,
    readonly position: TrainingPosition
  ) {
    super(`training diverged: the "${term}" term became NaN or infinite at epoch ${position.epoch + 1}, step ${position.stepInEpoch + 1}`)
  }
}

export class TrainingCancelledError extends Error {
  constructor() {
    super('training was cancelled')
  }
}

/**
 * Defaults for a run of `trainCount` items. On a GPU (`onGpu`) large sets train in batches of 512
 * at learning rate 2e-3: a batch of 128 images of 28x28 keeps a GPU mostly idle between kernel
 * launches, and Adam's step grows with the square root of the batch (4x the batch, 2x the rate) so
 * that an epoch of 4x fewer steps still gets as far (README: the held-out figures of both).
 */
export const defaultTrainOptions = (trainCount: number, family?: ModelFamily, onGpu = false): TrainOptions => ({
  epochs: defaultEpochs(trainCount, family),
  batchSize: onGpu && trainCount >= 10_000 ? GPU_BATCH_SIZE : trainCount >= 1000 ? 128 : 32,
  learningRate: onGpu && trainCount >= 10_000 ? 2e-3 : 1e-3,
  seed: 0,
  checkpointEverySteps: 200
})

export const GPU_BATCH_SIZE = 512

/**
 * Epochs by dataset size: small sets need more passes to learn anything; large ones get a useful
 * map in a few. A family may train more (FAMILY_DEFAULTS' epochScale: the CDVAE twice as many).
 */
export function defaultEpochs(trainCount: number, family?: ModelFamily): number {
  const base = trainCount >= 50_000 ? 5 : trainCount >= 10_000 ? 10 : 30
  return family ? base * FAMILY_DEFAULTS[family].epochScale : base
}

const nextTick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0))

/**
 * The gradient of the model's loss on one batch, keyed by variable name (as tf.variableGrads gives
 * it and optimizers look it up), and the batch means of every term. The caller disposes `grads`.
 * Trainer.step applies it; a data-parallel worker writes it to the workers' shared exchange first.
 */
export async function lossGradients(
  model: VaeFamilyModel,
  data: TrainingData,
  indices: ArrayLike<number>,
  seed: number,
  step?: number
): Promise<{ grads: tf.NamedTensorMap; values: Record<string, number> }> {
  const batch = makeBatch(data, indices)
  const kept: Record<string, tf.Scalar> = {}
  try {
    // The gradient is the training objective's; the values reported are the ELBO's terms.
    const { value, grads } = tf.variableGrads(() => {
      const { total, terms, objective } = model.loss(batch.x, batch.labels, seed, step)
      kept.total = tf.keep(total)
      for (const [name, t] of Object.entries(terms)) kept[name] = tf.keep(t)
      return objective
    }, model.parameters.trainable())
    value.dispose()
    try {
      return { grads, values: await readScalarsAndDispose(kept) }
    } catch (error) {
      tf.dispose(grads)
      throw error
    }
  } finally {
    tf.dispose(Object.values(kept))
    tf.dispose([batch.x, batch.labels ?? []])
  }
}

export class Trainer {
  readonly optimizer: tf.AdamOptimizer
  position: TrainingPosition = { epoch: 0, stepInEpoch: 0, globalStep: 0 }
  private paused = false
  private cancelled = false
  private resumeWaiters: (() => void)[] = []

  constructor(
    readonly model: VaeFamilyModel,
    readonly data: TrainingData,
    readonly options: TrainOptions
  ) {
    this.optimizer = tf.train.adam(options.learningRate)
  }

  get stepsPerEpoch(): number {
    return Math.ceil(this.data.trainIndices.length / this.options.batchSize)
  }

  pause(): void {
    this.paused = true
  }

  resume(): void {
    this.paused = false
    for (const wake of this.resumeWaiters.splice(0)) wake()
  }

  cancel(): void {
    this.cancelled = true
    this.resume()
  }

  get isPaused(): boolean {
    return this.paused
  }

  /**
   * One optimisation step of run(): the in-process step() here. Subclasses override it to compute
   * the step elsewhere (the engine's data-parallel trainer runs it in worker threads), which is
   * why it is async and why run() never calls step() directly.
   */
  async trainStep(indices: Int32Array, seed: number, step?: number): Promise<Record<string, number>> {
    return this.step(indices, seed, step)
  }

  /**
   * Brings `this.model` (and, with `withOptimizer`, `this.optimizer`) up to date with wherever the
   * training steps ran. run() calls it before each held-out evaluation and each checkpoint; the
   * in-process trainer's model and optimizer are always current, so here it does nothing.
   */
  protected async syncModel(withOptimizer: boolean): Promise<void> {
    void withOptimizer
  }

  /** The epoch's held-out evaluation: evaluateWithHealth() here; a data-parallel trainer spreads it over its workers. */
  protected async evaluateHeldOut(seed: number): Promise<Evaluation> {
    return evaluateWithHealth(this.model, this.data, this.data.heldOutIndices, 500, seed)
  }

  /** Releases the optimizer (and whatever a subclass holds: worker threads). */
  dispose(): void {
    this.cancel()
    this.optimizer.dispose()
  }

  /** One Adam step on one batch (`step`: the global step, for KL warm-up); returns the batch means of every term. */
  async step(indices: ArrayLike<number>, seed: number, step?: number): Promise<Record<string, number>> {
    const { grads, values } = await lossGradients(this.model, this.data, indices, seed, step)
    try {
      // variableGrads keys gradients by variable name, which is what applyGradients looks them up by.
      this.optimizer.applyGradients(grads as unknown as Parameters<tf.AdamOptimizer['applyGradients']>[0])
    } finally {
      tf.dispose(grads)
    }
    return values
  }

  /** Runs from `this.position` to the last epoch. */
  async run(callbacks: TrainingCallbacks = {}): Promise<void> {
    const { epochs, batchSize, seed, checkpointEverySteps } = this.options
    const stepsPerEpoch = this.stepsPerEpoch
    const totalSteps = epochs * stepsPerEpoch
    const startedAt = performance.now()
    const startStep = this.position.globalStep
    while (this.position.epoch < epochs) {
      const epochStart = performance.now()
      // The order of an epoch depends only on (seed, epoch): a resumed run sees the same batches.
      const order = shuffled(this.data.trainIndices, seed * 1000 + this.position.epoch)
      const sums: Record<string, number> = {}
      let itemsSeen = 0
      while (this.position.stepInEpoch < stepsPerEpoch) {
        if (this.paused) await new Promise<void>((resolve) => this.resumeWaiters.push(resolve))
        if (this.cancelled) throw new TrainingCancelledError()
        const from = this.position.stepInEpoch * batchSize
        const indices = order.subarray(from, Math.min(from + batchSize, order.length))
        const values = await this.trainStep(indices, seed * 1_000_003 + this.position.globalStep, this.position.globalStep)
        // Name the term that blew up rather than the total that it made NaN too.
        const broken = Object.keys(values)
          .sort((a, b) => Number(a === 'total') - Number(b === 'total'))
          .find((k) => !Number.isFinite(values[k]))
        if (broken) throw new TrainingDivergedError(broken, { ...this.position })
        for (const [name, v] of Object.entries(values)) sums[name] = (sums[name] ?? 0) + v * indices.length
        itemsSeen += indices.length
        this.position.stepInEpoch++
        this.position.globalStep++
        const elapsed = (performance.now() - startedAt) / 1000
        const stepsDone = this.position.globalStep - startStep
        const stepsPerSecond = stepsDone / Math.max(elapsed, 1e-9)
        callbacks.onStep?.({
          ...this.position,
          epochs,
          stepsPerEpoch,
          loss: values.total ?? Number.NaN,
          terms: values,
          itemsPerSecond: stepsPerSecond * batchSize,
          etaSeconds: stepsDone >= 3 ? (totalSteps - this.position.globalStep) / stepsPerSecond : null
        })
        if (this.position.globalStep % checkpointEverySteps === 0 && this.position.stepInEpoch < stepsPerEpoch && callbacks.onCheckpoint) {
          await this.syncModel(true)
          await callbacks.onCheckpoint({ ...this.position })
        }
        await nextTick()
      }
      const train: Record<string, number> = {}
      for (const [name, sum] of Object.entries(sums)) train[name] = sum / Math.max(itemsSeen, 1)
      // The epoch's checkpoint follows with no step in between: one sync serves both.
      await this.syncModel(callbacks.onCheckpoint !== undefined)
      const { values: heldOut, health } = await this.evaluateHeldOut(seed + 17)
      this.position = { epoch: this.position.epoch + 1, stepInEpoch: 0, globalStep: this.position.globalStep }
      callbacks.onEpoch?.({ epoch: this.position.epoch, train, heldOut, health, seconds: (performance.now() - epochStart) / 1000 })
      await callbacks.onCheckpoint?.({ ...this.position })
    }
  }
}

/**
 * Every loss term averaged over `indices` (one reparameterised sample per item, as the reference
 * does), plus the negative ELBO in bits per dimension.
 */
export async function evaluate(model: VaeFamilyModel, data: TrainingData, indices: Int32Array, batchSize = 500, seed = 0): Promise<Record<string, number>> {
  return (await evaluateWithHealth(model, data, indices, batchSize, seed)).values
}

export interface Evaluation {
  values: Record<string, number>
  health: LatentHealth
}

/** evaluate()'s figures and every latent space's health on the same items. */
export async function evaluateWithHealth(model: VaeFamilyModel, data: TrainingData, indices: Int32Array, batchSize = 500, seed = 0): Promise<Evaluation> {
  const chunks: ChunkEvaluation[] = []
  for (const { from, to } of evaluationChunks(indices.length, batchSize)) {
    chunks.push(await evaluateChunk(model, data, indices.subarray(from, to), seed + from))
    await nextTick()
  }
  return combineEvaluation(chunks, data)
}

// evaluate() in three parts, so that a data-parallel trainer can spread the chunks over workers
// and still get exactly what evaluate() returns (same chunks, same seeds, same order of sums).

/** One chunk's means: of every term, and per space of each dimension's KL, posterior mean and its square. */
export interface ChunkEvaluation {
  count: number
  values: Record<string, number>
  moments: Record<string, { kl: number[]; mean: number[]; meanSquare: number[] }>
}

export function evaluationChunks(count: number, batchSize: number): { from: number; to: number }[] {
  const chunks: { from: number; to: number }[] = []
  for (let from = 0; from < count; from += batchSize) chunks.push({ from, to: Math.min(from + batchSize, count) })
  return chunks
}

/** The batch means of every term over one chunk; `seed` is evaluate()'s seed plus the chunk's offset. */
export async function evaluateChunk(model: VaeFamilyModel, data: TrainingData, indices: ArrayLike<number>, seed: number): Promise<ChunkEvaluation> {
  const batch = makeBatch(data, indices)
  try {
    const { scalars, spaces } = tf.tidy(() => {
      const { total, terms, klPerDim } = model.loss(batch.x, batch.labels, seed)
      const posteriors = model.posteriors(batch.x)
      const spaces: Record<string, { kl: tf.Tensor; mean: tf.Tensor; meanSquare: tf.Tensor }> = {}
      for (const [space, kl] of Object.entries(klPerDim)) {
        const mu = posteriors[space]?.mu
        if (mu) spaces[space] = { kl, mean: mu.mean(0), meanSquare: mu.square().mean(0) }
      }
      return { scalars: { total, ...terms } as Record<string, tf.Tensor>, spaces }
    })
    const values = await readScalarsAndDispose(scalars)
    const moments: ChunkEvaluation['moments'] = {}
    for (const [space, tensors] of Object.entries(spaces)) {
      const { kl, mean, meanSquare } = await readAndDispose(tensors)
      moments[space] = { kl: Array.from(kl), mean: Array.from(mean), meanSquare: Array.from(meanSquare) }
    }
    return { count: indices.length, values, moments }
  } finally {
    tf.dispose([batch.x, batch.labels ?? []])
  }
}

/** Chunk means (in chunk order) to the item means, plus bits per dimension and each space's health. */
export function combineEvaluation(chunks: ChunkEvaluation[], data: Pick<TrainingData, 'shape'>): Evaluation {
  const sums: Record<string, number> = {}
  const momentSums: Record<string, { kl: number[]; mean: number[]; meanSquare: number[] }> = {}
  const addInto = (target: number[], source: number[], weight: number) => source.forEach((v, d) => (target[d] = (target[d] ?? 0) + v * weight))
  let count = 0
  for (const chunk of chunks) {
    for (const [name, v] of Object.entries(chunk.values)) sums[name] = (sums[name] ?? 0) + v * chunk.count
    for (const [space, m] of Object.entries(chunk.moments)) {
      const zeros = () => new Array<number>(m.kl.length).fill(0)
      const target = (momentSums[space] ??= { kl: zeros(), mean: zeros(), meanSquare: zeros() })
      addInto(target.kl, m.kl, chunk.count)
      addInto(target.mean, m.mean, chunk.count)
      addInto(target.meanSquare, m.meanSquare, chunk.count)
    }
    count += chunk.count
  }
  const n = Math.max(count, 1)
  const values: Record<string, number> = {}
  for (const [name, sum] of Object.entries(sums)) values[name] = sum / n
  const { height, width, channels } = data.shape
  if (values.total !== undefined) values.bits_per_dim = values.total / (height * width * channels * Math.LN2)
  const health: LatentHealth = {}
  for (const [space, m] of Object.entries(momentSums)) {
    // Var = E[mu^2] - E[mu]^2, floored at 0 against rounding.
    const meanVariance = m.meanSquare.map((sq, d) => Math.max(0, sq / n - ((m.mean[d] ?? 0) / n) ** 2))
    health[space] = {
      klPerDim: m.kl.map((v) => v / n),
      meanVariance,
      activeUnits: meanVariance.filter((v) => v > ACTIVE_UNIT_THRESHOLD).length
    }
  }
  return { values, health }
}
