// Checkpoints in TensorFlow.js's weights format: a JSON document with a `weightsManifest` (as
// tf.io writes for model.json) describing the binary weights that follow, plus the model config,
// the Adam state and where training stood, so that an interrupted run resumes where it stopped.
// Pure tf: the engine decides where the bytes go (and writes them atomically).
import * as tf from '@tensorflow/tfjs'
import { createModel } from './index'
import type { TrainingPosition } from './train'
import type { ModelConfig, VaeFamilyModel } from './types'

export const CHECKPOINT_FORMAT = 'latent-cartographer-checkpoint/1'

export interface CheckpointDocument {
  format: typeof CHECKPOINT_FORMAT
  config: ModelConfig
  position: TrainingPosition | null
  /** Anything the caller wants to keep with the weights (training options, history...). */
  meta: Record<string, unknown>
  weightsManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[]
  optimizerManifest: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[] | null
}

export interface SerializedCheckpoint {
  document: CheckpointDocument
  weights: Uint8Array
  optimizer: Uint8Array | null
}

export async function serializeCheckpoint(
  model: VaeFamilyModel,
  optimizer: tf.Optimizer | null,
  position: TrainingPosition | null,
  meta: Record<string, unknown> = {}
): Promise<SerializedCheckpoint> {
  const named = model.parameters.entries().map(([name, tensor]) => ({ name, tensor }))
  const encoded = await tf.io.encodeWeights(named)
  let optimizerBytes: Uint8Array | null = null
  let optimizerManifest: CheckpointDocument['optimizerManifest'] = null
  if (optimizer) {
    const state = await optimizer.getWeights()
    const encodedState = await tf.io.encodeWeights(state)
    optimizerBytes = new Uint8Array(encodedState.data)
    optimizerManifest = [{ paths: ['optimizer.bin'], weights: encodedState.specs }]
  }
  return {
    document: {
      format: CHECKPOINT_FORMAT,
      config: model.config,
      position,
      meta,
      weightsManifest: [{ paths: ['weights.bin'], weights: encoded.specs }],
      optimizerManifest
    },
    weights: new Uint8Array(encoded.data),
    optimizer: optimizerBytes
  }
}

const toBuffer = (bytes: Uint8Array): ArrayBuffer => bytes.slice().buffer as ArrayBuffer

/** The checkpoint's weights by parameter name (the caller disposes them). */
export function decodeCheckpointWeights(checkpoint: SerializedCheckpoint): tf.NamedTensorMap {
  const group = checkpoint.document.weightsManifest[0]
  if (!group) throw new Error('the checkpoint lists no weights (its weightsManifest is empty)')
  return tf.io.decodeWeights(toBuffer(checkpoint.weights), group.weights)
}

/** A model with the checkpoint's weights (and, when given an optimizer, its Adam state restored). */
export async function restoreCheckpoint(checkpoint: SerializedCheckpoint, optimizer?: tf.Optimizer): Promise<VaeFamilyModel> {
  const { document } = checkpoint
  if (document.format !== CHECKPOINT_FORMAT) throw new Error(`not a Latent Cartographer checkpoint (format ${String(document.format)})`)
  const model = createModel(document.config)
  const named = decodeCheckpointWeights(checkpoint)
  try {
    model.parameters.assign(named)
  } finally {
    tf.dispose(Object.values(named))
  }
  if (optimizer) await restoreOptimizerState(checkpoint, optimizer)
  return model
}

/** Adam's moments and step count, so that a resumed run continues exactly where it stopped. */
export async function restoreOptimizerState(checkpoint: SerializedCheckpoint, optimizer: tf.Optimizer): Promise<void> {
  const manifest = checkpoint.document.optimizerManifest
  if (!checkpoint.optimizer || !manifest) return
  const specs = manifest[0]?.weights ?? []
  const decoded = tf.io.decodeWeights(toBuffer(checkpoint.optimizer), specs)
  await optimizer.setWeights(
    specs.map((spec) => {
      const tensor = decoded[spec.name]
      if (!tensor) throw new Error(`the checkpoint's optimizer state lacks "${spec.name}"`)
      return { name: spec.name, tensor }
    })
  )
}
