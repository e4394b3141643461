// One replica of a data-parallel training run (see training/parallel-trainer.ts), in a worker thread of the
// engine process. The wasm backend runs on one thread in Node, so the engine trains on N cores by
// giving each of N workers a full copy of the model and its own Adam. Per step each worker computes
// the gradient of its share of the batch and writes it into its row of a GradientExchange (shared
// memory); the workers meet at a barrier, and each then averages the rows (weighted by the shares'
// item counts) and applies the same update with the same Adam state, so the replicas stay
// identical without ever sending weights, and the engine thread is out of the step's critical path:
// it only sends the step's indices and collects the loss terms. Weights travel only at start (from
// the engine's model) and when the engine asks for them (before an evaluation or a checkpoint).
import { parentPort } from 'node:worker_threads'
import { serveRequests } from '../workers/channel'
import * as tf from '@tensorflow/tfjs'
import '@tensorflow/tfjs-backend-wasm'
import type { ImageShape } from '../../../models/blocks'
import type { TrainingData } from '../../../models/data'
import { evaluateChunk, lossGradients, type ChunkEvaluation } from '../../../models/train'
import { createModel } from '../../../models/index'
import type { ModelConfig, VaeFamilyModel } from '../../../models/types'
import { selectBackend } from '../backend/select'
import {
  arriveAndWait,
  assignFlatWeights,
  failExchange,
  flattenWeights,
  ReplicaAdam,
  reportShare,
  shareCount,
  shareStatus,
  STATUS_EMPTY,
  STATUS_NON_FINITE,
  STATUS_READY,
  type GradientExchange,
  type OptimizerState
} from './replica'

/** The dataset as the workers see it: views over SharedArrayBuffers, sent once per run, never copied. */
export interface SharedTrainingData {
  shape: ImageShape
  pixels: Uint8Array
  labels: Int32Array | null
  numClasses: number
  binarize: boolean
}

export type TrainWorkerRequest =
  | {
      type: 'init'
      backend: string
      config: ModelConfig
      learningRate: number
      data: SharedTrainingData
      /** Every variable of the model in ParameterStore.list() order, concatenated. */
      weights: Float32Array
      optimizer: OptimizerState | null
      exchange: GradientExchange
      /** This worker's row in the exchange. */
      rank: number
    }
  /** Every worker gets one per step (an empty share too: it still applies the update). */
  | { type: 'step'; indices: Int32Array; seed: number; step?: number }
  | { type: 'state'; withOptimizer: boolean }
  /** Some of evaluate()'s chunks of `indices`: each with seed + its offset, as evaluate() does. */
  | { type: 'evaluate'; indices: Int32Array; chunks: { from: number; to: number }[]; seed: number }

export type TrainWorkerReply =
  | { type: 'ready'; backend: string }
  /** The step is applied (unless a term was NaN or infinite); `terms` are this share's means. */
  | { type: 'stepped'; terms: Record<string, number>; count: number }
  | { type: 'state'; weights: Float32Array; optimizer: OptimizerState | null }
  | { type: 'evaluation'; chunks: ChunkEvaluation[] }

interface Replica {
  model: VaeFamilyModel
  variables: tf.Variable[]
  /** Each variable's offset in an exchange row. */
  offsets: number[]
  /** The batch's mean gradient, laid out as an exchange row (rewritten every step). */
  mean: Float32Array
  optimizer: ReplicaAdam
  data: TrainingData
  exchange: GradientExchange
  rank: number
}

let replica: Replica | null = null

/** The wasm backend's view of a tensor's data on its heap (no copy), where the backend has one. */
interface HeapViews {
  typedArrayFromHeap?(info: tf.TensorInfo): Float32Array
}

function values(t: tf.Tensor): Float32Array {
  const backend = tf.backend() as unknown as HeapViews
  // A fresh view each call: the heap's ArrayBuffer changes whenever wasm memory grows.
  if (tf.getBackend() === 'wasm' && backend.typedArrayFromHeap) return backend.typedArrayFromHeap(t)
  return t.dataSync() as Float32Array
}

async function init(request: Extract<TrainWorkerRequest, { type: 'init' }>): Promise<TrainWorkerReply> {
  // The engine's backend, as far as a worker can have it: wasm (with the project's gradient
  // kernels, without which conv nets cannot train on wasm) or the pure-JS cpu backend.
  await selectBackend(request.backend === 'wasm' ? 'wasm' : 'cpu')
  // Same config, same seed: the replica starts as the engine's model did; the engine's current
  // weights (a resumed checkpoint's, say) then overwrite it, so every replica starts identical.
  const model = createModel(request.config)
  assignFlatWeights(model.parameters, request.weights)
  const optimizer = new ReplicaAdam(request.learningRate)
  if (request.optimizer && request.optimizer.slots.length > 0) optimizer.load(request.optimizer)
  const { shape, pixels, labels, numClasses, binarize } = request.data
  const data: TrainingData = { shape, pixels, labels, numClasses, binarize, trainIndices: new Int32Array(0), heldOutIndices: new Int32Array(0) }
  const variables = model.parameters.list()
  const offsets: number[] = []
  let size = 0
  for (const v of variables) {
    offsets.push(size)
    size += v.size
  }
  const { exchange, rank } = request
  if (exchange.gradients.length !== exchange.workers * size || exchange.present.length !== exchange.workers * variables.length) {
    throw new Error(`the gradient exchange is sized for another model (${exchange.gradients.length} values for ${exchange.workers} workers of ${size})`)
  }
  replica = { model, variables, offsets, mean: new Float32Array(size), optimizer, data, exchange, rank }
  return { type: 'ready', backend: tf.getBackend() }
}

function requireReplica(): Replica {
  if (!replica) throw new Error('the training worker got a request before init')
  return replica
}

async function step(indices: Int32Array, seed: number, globalStep?: number): Promise<TrainWorkerReply> {
  const { exchange } = requireReplica()
  let reply: Extract<TrainWorkerReply, { type: 'stepped' }>
  try {
    reply = await writeGradient(indices, seed, globalStep)
  } catch (error) {
    // The others would wait at the barrier for this worker's row for ever.
    failExchange(exchange)
    throw error
  }
  arriveAndWait(exchange)
  applyAverage()
  return reply
}

/** This worker's share: its gradient into its exchange row, its status and count beside it. */
async function writeGradient(indices: Int32Array, seed: number, globalStep?: number): Promise<Extract<TrainWorkerReply, { type: 'stepped' }>> {
  const { model, variables, offsets, data, exchange, rank } = requireReplica()
  if (indices.length === 0) {
    reportShare(exchange, rank, STATUS_EMPTY, 0)
    return { type: 'stepped', terms: {}, count: 0 }
  }
  // As Trainer.step, but the gradients go to the exchange instead of to the optimizer.
  const { grads, values: terms } = await lossGradients(model, data, indices, seed, globalStep)
  try {
    const size = exchange.gradients.length / exchange.workers
    const row = exchange.gradients.subarray(rank * size, (rank + 1) * size)
    const present = exchange.present.subarray(rank * variables.length, (rank + 1) * variables.length)
    // A variable the loss does not reach has no gradient (and Adam does not touch it).
    variables.forEach((v, i) => {
      const gradient = grads[v.name]
      present[i] = gradient ? 1 : 0
      if (gradient) row.set(values(gradient), offsets[i])
    })
  } finally {
    tf.dispose(grads)
  }
  const finite = Object.values(terms).every(Number.isFinite)
  reportShare(exchange, rank, finite ? STATUS_READY : STATUS_NON_FINITE, indices.length)
  return { type: 'stepped', terms, count: indices.length }
}

/**
 * After the barrier: the batch's mean gradient (the shares' means weighted by their item counts)
 * applied by Adam, identically in every worker. A step where any share's loss was NaN or infinite
 * is not applied, so the replicas keep the last good weights (the engine then stops the run).
 */
function applyAverage(): void {
  const { variables, offsets, optimizer, exchange, mean } = requireReplica()
  const ranks = Array.from({ length: exchange.workers }, (_, k) => k)
  if (ranks.some((k) => shareStatus(exchange, k) === STATUS_NON_FINITE)) return
  const contributing = ranks.filter((k) => shareStatus(exchange, k) === STATUS_READY)
  if (contributing.length === 0) return
  const total = contributing.reduce((sum, k) => sum + shareCount(exchange, k), 0)
  const size = exchange.gradients.length / exchange.workers
  meanInto(
    mean,
    contributing.map((k) => exchange.gradients.subarray(k * size, (k + 1) * size)),
    contributing.map((k) => shareCount(exchange, k) / total)
  )
  const count = variables.length
  const present = (k: number, i: number): boolean => exchange.present[k * count + i] === 1
  for (let i = 0; i < count; i++) {
    if (contributing.some((k) => present(k, i) !== present(contributing[0], i))) {
      throw new Error(`the training workers disagree on whether ${variables[i].name} has a gradient`)
    }
  }
  optimizer.beginStep()
  // Adam's moments follow the gradient's position among the variables that have one, as in
  // tf.train.adam (whose gradient map is in list() order).
  let position = 0
  for (let i = 0; i < count; i++) {
    if (!present(contributing[0], i)) continue
    const v = variables[i]
    // Into a new tensor rather than the heap in place: the wasm backend caches XNNPACK operators
    // (with the weights packed inside) by tensor id, so weights changed in place would go unseen.
    const next = new Float32Array(v.size)
    optimizer.update(position++, v, values(v), next, mean, offsets[i])
    const updated = tf.tensor(next, v.shape, 'float32')
    v.assign(updated)
    updated.dispose()
  }
  optimizer.endStep()
}

/** mean = sum_k rows[k] * shares[k]; a function of its own so that V8 optimises the loop alone. */
function meanInto(mean: Float32Array, rows: Float32Array[], shares: number[]): void {
  const length = mean.length
  if (rows.length === 2) {
    const [a, b] = rows
    const [wa, wb] = shares
    for (let j = 0; j < length; j++) mean[j] = a[j] * wa + b[j] * wb
    return
  }
  mean.fill(0)
  rows.forEach((row, k) => {
    for (let j = 0; j < length; j++) mean[j] += row[j] * shares[k]
  })
}

function state(withOptimizer: boolean): Extract<TrainWorkerReply, { type: 'state' }> {
  const { model, optimizer } = requireReplica()
  return { type: 'state', weights: flattenWeights(model.parameters), optimizer: withOptimizer ? optimizer.state() : null }
}

async function evaluate(indices: Int32Array, chunks: { from: number; to: number }[], seed: number): Promise<TrainWorkerReply> {
  const { model, data } = requireReplica()
  const evaluated: ChunkEvaluation[] = []
  for (const { from, to } of chunks) evaluated.push(await evaluateChunk(model, data, indices.subarray(from, to), seed + from))
  return { type: 'evaluation', chunks: evaluated }
}

const port = parentPort
if (!port) throw new Error('train-worker runs as a worker thread')
// Requests run one at a time in arrival order; a throw is this worker's error (the trainer stops).
serveRequests<TrainWorkerRequest, TrainWorkerReply>(port, async (request) => {
  if (request.type === 'init') return { reply: await init(request) }
  if (request.type === 'step') return { reply: await step(request.indices, request.seed, request.step) }
  if (request.type === 'evaluate') return { reply: await evaluate(request.indices, request.chunks, request.seed) }
  const reply = state(request.withOptimizer)
  return { reply, transfer: [reply.weights.buffer as ArrayBuffer] }
})
