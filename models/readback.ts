// Reading tensors back to the CPU. Every read in the training and exploring paths is asynchronous:
// the webgpu backend can only read synchronously through an OffscreenCanvas, which Node lacks, so
// a dataSync() there throws. On wasm and cpu an awaited read costs nothing more.
import * as tf from '@tensorflow/tfjs'

/** The values of every tensor of a record, read in parallel; the tensors are disposed. */
export async function readAndDispose<K extends string>(tensors: Record<K, tf.Tensor>): Promise<Record<K, Float32Array>> {
  const entries = Object.entries(tensors) as [K, tf.Tensor][]
  try {
    const values = await Promise.all(entries.map(([, t]) => t.data() as Promise<Float32Array>))
    return Object.fromEntries(entries.map(([name], i) => [name, values[i]])) as Record<K, Float32Array>
  } finally {
    tf.dispose(entries.map(([, t]) => t))
  }
}

/** The values of a record of scalars, read in parallel; the tensors are disposed. */
export async function readScalarsAndDispose(tensors: Record<string, tf.Tensor>): Promise<Record<string, number>> {
  const read = await readAndDispose(tensors)
  return Object.fromEntries(
    Object.entries(read).map(([name, values]) => {
      const [value] = values
      if (value === undefined) throw new Error(`"${name}" read back empty where a scalar was expected`)
      return [name, value]
    })
  )
}

/** One tensor's values, read back; the tensor is disposed. */
export async function readOne<T extends tf.TypedArray = Float32Array>(tensor: tf.Tensor): Promise<T> {
  try {
    return (await tensor.data()) as T
  } finally {
    tensor.dispose()
  }
}
