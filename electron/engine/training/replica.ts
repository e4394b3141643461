// What the data-parallel trainer (training/parallel-trainer.ts) and its workers (training/worker.ts) both need:
// a model's weights and Adam's state as plain typed arrays, which is how they cross threads.
import * as tf from '@tensorflow/tfjs'
import type { ParameterStore } from '../../../models/blocks'

/** Adam's state without tensors: the step count, then every first moment, then every second moment. */
export interface OptimizerState {
  iterations: number
  slots: { name: string; shape: number[]; values: Float32Array }[]
}

/** Every variable's values in ParameterStore.list() order, in one array. */
export function flattenWeights(parameters: ParameterStore): Float32Array {
  const variables = parameters.list()
  const out = new Float32Array(variables.reduce((sum, v) => sum + v.size, 0))
  let offset = 0
  for (const v of variables) {
    out.set(v.dataSync() as Float32Array, offset)
    offset += v.size
  }
  return out
}

/** The inverse of flattenWeights: assigns every variable its slice of `flat`. */
export function assignFlatWeights(parameters: ParameterStore, flat: Float32Array): void {
  const entries = parameters.entries()
  const expected = entries.reduce((sum, [, v]) => sum + v.size, 0)
  if (flat.length !== expected) throw new Error(`the weights hold ${flat.length} values where the model has ${expected}`)
  const named: Record<string, tf.Tensor> = {}
  let offset = 0
  for (const [name, v] of entries) {
    named[name] = tf.tensor(flat.subarray(offset, offset + v.size), v.shape, 'float32')
    offset += v.size
  }
  try {
    parameters.assign(named)
  } finally {
    tf.dispose(Object.values(named))
  }
}

export async function getOptimizerState(optimizer: tf.Optimizer): Promise<OptimizerState> {
  const [iteration, ...slots] = await optimizer.getWeights()
  const iterations = (await iteration.tensor.data())[0]
  // getWeights makes a fresh scalar for the step count; the slots are the optimizer's own variables.
  iteration.tensor.dispose()
  return {
    iterations,
    slots: slots.map(({ name, tensor }) => ({ name, shape: tensor.shape.slice(), values: (tensor.dataSync() as Float32Array).slice() }))
  }
}

/**
 * Replaces Adam's state. Adam's slots are matched to variables by position, not by name; `names`
 * (when given) renames the slots for this side's variables so that checkpoints read naturally.
 */
export async function setOptimizerState(optimizer: tf.Optimizer, state: OptimizerState, names?: string[]): Promise<void> {
  const old = await optimizer.getWeights()
  const values: { name: string; tensor: tf.Tensor }[] = [
    { name: 'iter', tensor: tf.scalar(state.iterations, 'int32') },
    ...state.slots.map(({ name, shape, values }, i) => ({ name: names?.[i] ?? name, tensor: tf.tensor(values, shape, 'float32') }))
  ]
  try {
    await optimizer.setWeights(values)
  } finally {
    // setWeights made variables of its own from these (sharing their data by reference count),
    // and drops the slots it replaced without disposing them.
    tf.dispose(values.map((v) => v.tensor))
    tf.dispose(old.map((v) => v.tensor))
  }
}

/**
 * tf.train.adam's update on plain arrays, for the training workers: one loop per variable instead
 * of a dozen tfjs ops (which cost a data-parallel step ~7-10 ms on wasm). The maths and the state are tf.train.adam's (beta1 0.9, beta2 0.999, epsilon
 * 1e-7: the backend epsilon of wasm and cpu), including its quirk that moments belong to a
 * gradient's position in the step's gradient list, not to a variable's name: state() and load()
 * read and write OptimizerState as tf.train.adam's getWeights/setWeights do, so a checkpoint is the
 * same whichever trainer wrote it. Computed in float64 and stored in float32, so it agrees with
 * tf.train.adam to float32 rounding, not bit for bit.
 */
export class ReplicaAdam {
  /** Steps applied so far (tf.train.adam's `iterations`). */
  iterations = 0
  private readonly first: Float32Array[] = []
  private readonly second: Float32Array[] = []
  private readonly names: string[] = []
  private readonly shapes: number[][] = []
  private correction1 = 1
  private correction2 = 1

  constructor(
    readonly learningRate: number,
    readonly beta1 = 0.9,
    readonly beta2 = 0.999,
    readonly epsilon = 1e-7
  ) {}

  /** Starts a step: the bias corrections of step iterations + 1. */
  beginStep(): void {
    const t = this.iterations + 1
    this.correction1 = 1 / (1 - Math.pow(this.beta1, t))
    this.correction2 = 1 / (1 - Math.pow(this.beta2, t))
  }

  /** Ends a step begun by beginStep. */
  endStep(): void {
    this.iterations++
  }

  /**
   * Writes into `updated` the `weights` after one step with the gradient gradient[from + j] (j over
   * the weights), with the moments at `position` (made as zeros for `variable` on first use).
   * `updated` may be `weights`.
   */
  update(
    position: number,
    variable: { name: string; shape: number[] },
    weights: Float32Array,
    updated: Float32Array,
    gradient: Float32Array,
    from: number
  ): void {
    const size = weights.length
    if (updated.length !== size) throw new Error(`${variable.name}: ${updated.length} values to write for ${size} weights`)
    const name = variable.name
    if (!this.first[position]) {
      this.first[position] = new Float32Array(size)
      this.second[position] = new Float32Array(size)
      this.names[position] = name
      this.shapes[position] = variable.shape.slice()
    }
    const m = this.first[position]
    const v = this.second[position]
    if (m.length !== size) throw new Error(`Adam's moments at ${position} hold ${m.length} values where ${name} has ${size}`)
    const { beta1, beta2, epsilon, correction1, correction2 } = this
    const rate = this.learningRate
    for (let j = 0; j < size; j++) {
      const g = gradient[from + j]
      const mj = beta1 * m[j] + (1 - beta1) * g
      const vj = beta2 * v[j] + (1 - beta2) * g * g
      m[j] = mj
      v[j] = vj
      updated[j] = weights[j] - (rate * (mj * correction1)) / (Math.sqrt(vj * correction2) + epsilon)
    }
  }

  /** The state as tf.train.adam's getWeights gives it: every first moment, then every second. */
  state(): OptimizerState {
    const count = this.first.length
    for (let i = 0; i < count; i++) if (!this.first[i]) throw new Error(`Adam has no moments at position ${i}`)
    return {
      iterations: this.iterations,
      slots: [
        ...this.first.map((values, i) => ({ name: `${this.names[i]}/m`, shape: this.shapes[i].slice(), values: values.slice() })),
        ...this.second.map((values, i) => ({ name: `${this.names[i]}/v`, shape: this.shapes[i].slice(), values: values.slice() }))
      ]
    }
  }

  /** Replaces the state with one from tf.train.adam (getOptimizerState) or from state(). */
  load(state: OptimizerState): void {
    const count = state.slots.length / 2
    if (!Number.isInteger(count)) throw new Error(`Adam's state has an odd number of slots (${state.slots.length})`)
    this.iterations = state.iterations
    this.first.length = 0
    this.second.length = 0
    this.names.length = 0
    this.shapes.length = 0
    for (let i = 0; i < count; i++) {
      this.first.push(Float32Array.from(state.slots[i].values))
      this.second.push(Float32Array.from(state.slots[count + i].values))
      this.names.push(state.slots[i].name.replace(/\/m$/, ''))
      this.shapes.push(state.slots[i].shape.slice())
    }
  }
}

/**
 * Shared memory through which the workers of one data-parallel run pool their gradients without the
 * engine thread in between (training/parallel-trainer.ts): each worker writes its share's gradient into its
 * own row, all meet at a barrier, and then each averages the rows itself and applies the same
 * update. A step's rows are only rewritten by the next step, which the engine sends once every
 * worker has answered this one, so one set of rows is enough.
 */
export interface GradientExchange {
  workers: number
  /** Per worker a row of every variable's gradient at its offset in ParameterStore.list() order. */
  gradients: Float32Array
  /** Per worker, per variable (list() order): 1 where the worker's gradient has that variable. */
  present: Uint8Array
  /** CONTROL_* slots, then per worker its status (STATUS_*), then per worker its item count. */
  control: Int32Array
}

const CONTROL_ARRIVED = 0
const CONTROL_GENERATION = 1
const CONTROL_FAILED = 2
const CONTROL_SLOTS = 3
/** A worker's status for the step: no items, a finite gradient, or a loss term that was NaN or infinite. */
export const STATUS_EMPTY = 0
export const STATUS_READY = 1
export const STATUS_NON_FINITE = 2

export function createGradientExchange(workers: number, parameterCount: number, variableCount: number): GradientExchange {
  return {
    workers,
    gradients: new Float32Array(new SharedArrayBuffer(workers * parameterCount * 4)),
    present: new Uint8Array(new SharedArrayBuffer(workers * variableCount)),
    control: new Int32Array(new SharedArrayBuffer((CONTROL_SLOTS + 2 * workers) * 4))
  }
}

/** Records worker `rank`'s status and item count for the step (before it arrives at the barrier). */
export function reportShare(exchange: GradientExchange, rank: number, status: number, count: number): void {
  Atomics.store(exchange.control, CONTROL_SLOTS + rank, status)
  Atomics.store(exchange.control, CONTROL_SLOTS + exchange.workers + rank, count)
}

export function shareStatus(exchange: GradientExchange, rank: number): number {
  return Atomics.load(exchange.control, CONTROL_SLOTS + rank)
}

export function shareCount(exchange: GradientExchange, rank: number): number {
  return Atomics.load(exchange.control, CONTROL_SLOTS + exchange.workers + rank)
}

/** Marks the run failed and wakes every worker waiting at the barrier (which then throws). */
export function failExchange(exchange: GradientExchange): void {
  Atomics.store(exchange.control, CONTROL_FAILED, 1)
  Atomics.notify(exchange.control, CONTROL_GENERATION)
}

/**
 * Blocks until every worker has arrived (a generation barrier: the last to arrive resets the count
 * and advances the generation). Throws if the run failed meanwhile: a worker that died would
 * otherwise leave the others waiting for ever. Waits in slices so that terminate() gets through.
 */
export function arriveAndWait(exchange: GradientExchange): void {
  const control = exchange.control
  const generation = Atomics.load(control, CONTROL_GENERATION)
  if (Atomics.add(control, CONTROL_ARRIVED, 1) === exchange.workers - 1) {
    Atomics.store(control, CONTROL_ARRIVED, 0)
    Atomics.add(control, CONTROL_GENERATION, 1)
    Atomics.notify(control, CONTROL_GENERATION)
  } else {
    while (Atomics.load(control, CONTROL_GENERATION) === generation) {
      if (Atomics.load(control, CONTROL_FAILED)) break
      Atomics.wait(control, CONTROL_GENERATION, generation, 200)
    }
  }
  if (Atomics.load(control, CONTROL_FAILED)) throw new Error('another training worker failed')
}
