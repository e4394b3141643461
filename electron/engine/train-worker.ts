// One replica of a data-parallel training run (see parallel-trainer.ts), in a worker thread of the
// engine process. The wasm backend runs on one thread in Node, so the engine trains on N cores by
// giving each of N workers a full copy of the model and its own Adam: per step a worker computes
// the gradient of its share of the batch and posts it as one flat Float32Array; the engine
// averages the shares (weighted by their item counts) and sends the average back; every worker
// applies the same average with the same Adam state, so the replicas stay identical without ever
// sending weights. Weights travel only at start (from the engine's model) and when the engine asks
// for them (before an evaluation or a checkpoint).
import { parentPort } from 'node:worker_threads'
import * as tf from '@tensorflow/tfjs'
import '@tensorflow/tfjs-backend-wasm'
import type { ImageShape } from '../../models/blocks'
import type { TrainingData } from '../../models/data'
import { evaluateChunk, lossGradients } from '../../models/train'
import { createModel } from '../../models/index'
import type { ModelConfig, VaeFamilyModel } from '../../models/types'
import { selectBackend } from './backend'
import { assignFlatWeights, flattenWeights, getOptimizerState, setOptimizerState, type OptimizerState } from './train-replica'

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
    }
  | { type: 'step'; indices: Int32Array; seed: number }
  /** The averaged gradient; `layout` lists the variables (list() indices) it holds, in order. */
  | { type: 'apply'; gradients: Float32Array; layout: number[] }
  | { type: 'state'; withOptimizer: boolean }
  /** Some of evaluate()'s chunks of `indices`: each with seed + its offset, as evaluate() does. */
  | { type: 'evaluate'; indices: Int32Array; chunks: { from: number; to: number }[]; seed: number }

export type TrainWorkerReply =
  | { type: 'ready'; backend: string }
  | { type: 'gradients'; gradients: Float32Array; layout: number[]; terms: Record<string, number>; count: number }
  | { type: 'state'; weights: Float32Array; optimizer: OptimizerState | null }
  | { type: 'evaluation'; values: Record<string, number>[] }
  | { type: 'error'; message: string }

interface Replica {
  model: VaeFamilyModel
  variables: tf.Variable[]
  optimizer: tf.AdamOptimizer
  data: TrainingData
}

let replica: Replica | null = null
/**
 * The last averaged gradient's buffer, reused for the next step's gradient: buffers then shuttle
 * between the threads instead of being allocated (and page-faulted in) on every step.
 */
let spare: Float32Array | null = null

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
  const optimizer = tf.train.adam(request.learningRate)
  if (request.optimizer && request.optimizer.slots.length > 0) await setOptimizerState(optimizer, request.optimizer)
  const { shape, pixels, labels, numClasses, binarize } = request.data
  const data: TrainingData = { shape, pixels, labels, numClasses, binarize, trainIndices: new Int32Array(0), heldOutIndices: new Int32Array(0) }
  replica = { model, variables: model.parameters.list(), optimizer, data }
  return { type: 'ready', backend: tf.getBackend() }
}

function requireReplica(): Replica {
  if (!replica) throw new Error('the training worker got a request before init')
  return replica
}

function step(indices: Int32Array, seed: number): TrainWorkerReply {
  const { model, variables, data } = requireReplica()
  // As Trainer.step, but the gradients leave the worker instead of going to the optimizer.
  const { grads, values: terms } = lossGradients(model, data, indices, seed)
  try {
    // A variable the loss does not reach has no gradient; Adam indexes its slots by position in
    // the gradient map, so the layout (which variables, in list() order) travels with the values.
    const layout: number[] = []
    let length = 0
    variables.forEach((v, i) => {
      if (grads[v.name]) {
        layout.push(i)
        length += v.size
      }
    })
    const gradients = spare && spare.length === length ? spare : new Float32Array(length)
    spare = null
    let offset = 0
    for (const i of layout) {
      const v = variables[i]
      gradients.set(values(grads[v.name]), offset)
      offset += v.size
    }
    return { type: 'gradients', gradients, layout, terms, count: indices.length }
  } finally {
    tf.dispose(grads)
  }
}

function apply(gradients: Float32Array, layout: number[]): void {
  const { variables, optimizer } = requireReplica()
  // Keys in list() order, as tf.variableGrads builds them for Trainer.step: the same Adam slots.
  const named: Record<string, tf.Tensor> = {}
  let offset = 0
  for (const i of layout) {
    const v = variables[i]
    named[v.name] = tf.tensor(gradients.subarray(offset, offset + v.size), v.shape, 'float32')
    offset += v.size
  }
  if (offset !== gradients.length) throw new Error(`the averaged gradient holds ${gradients.length} values where its layout needs ${offset}`)
  try {
    optimizer.applyGradients(named as tf.NamedTensorMap as Parameters<tf.AdamOptimizer['applyGradients']>[0])
  } finally {
    tf.dispose(Object.values(named))
  }
  spare = gradients
}

async function state(withOptimizer: boolean): Promise<TrainWorkerReply> {
  const { model, optimizer } = requireReplica()
  return { type: 'state', weights: flattenWeights(model.parameters), optimizer: withOptimizer ? await getOptimizerState(optimizer) : null }
}

function evaluate(indices: Int32Array, chunks: { from: number; to: number }[], seed: number): TrainWorkerReply {
  const { model, data } = requireReplica()
  return { type: 'evaluation', values: chunks.map(({ from, to }) => evaluateChunk(model, data, indices.subarray(from, to), seed + from)) }
}

const port = parentPort
if (!port) throw new Error('train-worker runs as a worker thread')
// Requests run one at a time in arrival order: an 'apply' is always done before the next 'step'.
let queue: Promise<void> = Promise.resolve()
port.on('message', (request: TrainWorkerRequest) => {
  queue = queue.then(async () => {
    try {
      if (request.type === 'init') port.postMessage(await init(request))
      else if (request.type === 'step') {
        const reply = step(request.indices, request.seed)
        port.postMessage(reply, reply.type === 'gradients' ? [reply.gradients.buffer as ArrayBuffer] : [])
      } else if (request.type === 'apply') apply(request.gradients, request.layout)
      else if (request.type === 'evaluate') port.postMessage(evaluate(request.indices, request.chunks, request.seed))
      else {
        const reply = await state(request.withOptimizer)
        port.postMessage(reply, reply.type === 'state' ? [reply.weights.buffer as ArrayBuffer] : [])
      }
    } catch (error) {
      port.postMessage({ type: 'error', message: error instanceof Error ? error.message : String(error) } satisfies TrainWorkerReply)
    }
  })
})
