// What the data-parallel trainer (parallel-trainer.ts) and its workers (train-worker.ts) both need:
// a model's weights and Adam's state as plain typed arrays, which is how they cross threads.
import * as tf from '@tensorflow/tfjs'
import type { ParameterStore } from '../../models/blocks'

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
