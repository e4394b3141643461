// What the in-process and the data-parallel training tests share: the wasm backend with the
// project's kernels, a small generated dataset (480 shapes at 16 px), the options they vary, and
// a model of each family sized for it.
import * as tf from '@tensorflow/tfjs'
import '@tensorflow/tfjs-backend-wasm'
import { beforeAll } from 'vitest'
import { createModel, defaultModelConfig, type ModelFamily } from '../../models/index'
import { registerWasmKernels } from '../../electron/engine/backend/wasm-kernels'
import type { TrainOptions } from '../../models/train'
import { generateShapes } from '../../electron/engine/datasets/shapes'
import { trainingData } from '../../electron/engine/run/config'

/** Call at the top of a test file: every test in it trains on wasm. */
export function useWasmBackend(): void {
  beforeAll(async () => {
    registerWasmKernels()
    await tf.setBackend('wasm')
    await tf.ready()
  })
}

export const dataset = generateShapes({ count: 480, size: 16, seed: 3, heldOutFraction: 0.2 })
export const data = trainingData(dataset)

export const trainOptions = (overrides: Partial<TrainOptions> = {}): TrainOptions => ({
  epochs: 3,
  batchSize: 32,
  learningRate: 2e-3,
  seed: 5,
  checkpointEverySteps: 1000,
  ...overrides
})

export const modelFor = (family: ModelFamily = 'vae', seed = 1) =>
  createModel(
    defaultModelConfig(family, data.shape, dataset.classNames.length, {
      seed,
      latentDims: family === 'vae' ? { z: 8 } : family === 'srvae' ? { u: 4, z: 8 } : { z_l: 4, z_u: 4 }
    })
  )
