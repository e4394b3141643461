// The webgpu backend (Dawn in Node) against the cpu backend, on whatever adapter this machine has:
// here SwiftShader, a software Vulkan (correctness only, never speed). scripts/test.mjs sets
// CARTOGRAPHER_WEBGPU_TESTS=1 with SwiftShader's ICD where Debian's chromium ships it; elsewhere the
// file is skipped with that reason. Shapes are small: SwiftShader compiles every shader on first use.
//
// Tolerance: every loss term within 1e-4 relative of the cpu backend's, every gradient within 1e-3
// of the largest gradient of its variable (float32 sums in another order on another device).
import * as tf from '@tensorflow/tfjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createModel, defaultModelConfig, type ModelConfig, type ModelFamily } from '../../../../models/index'
import { restoreCheckpoint, serializeCheckpoint } from '../../../../models/checkpoint'
import { makeBatch, type TrainingData } from '../../../../models/data'
import { evaluate, Trainer } from '../../../../models/train'
import { registerWasmKernels } from '../../../../electron/engine/backend/wasm-kernels'
import { readAndDispose } from '../../../../models/readback'
import { activateWebGpu, type AdapterReport } from '../../../../electron/engine/backend/webgpu'
import { generateShapes } from '../../../../electron/engine/datasets/shapes'
import { trainingData } from '../../../../electron/engine/run/config'
import '@tensorflow/tfjs-backend-wasm'

const enabled = process.env.CARTOGRAPHER_WEBGPU_TESTS === '1'
const toy = generateShapes({ count: 96, size: 16, seed: 9, heldOutFraction: 0.25 })
const data: TrainingData = trainingData(toy)
const families: ModelFamily[] = ['vae', 'srvae', 'cdvae']

const configFor = (family: ModelFamily): ModelConfig =>
  defaultModelConfig(family, data.shape, toy.classNames.length, {
    seed: 3,
    latentDims: family === 'vae' ? { z: 4 } : family === 'srvae' ? { u: 2, z: 4 } : { z_l: 3, z_u: 3 },
    ...(family === 'vae' ? { conditionalPrior: true } : {})
  })

/** Loss terms and gradients of one batch on the current backend (read asynchronously: webgpu has no dataSync in Node). */
async function lossAndGradients(config: ModelConfig): Promise<{ terms: Record<string, number>; grads: Record<string, Float32Array> }> {
  const model = createModel(config)
  const batch = makeBatch(data, data.trainIndices.subarray(0, 8))
  const kept: Record<string, tf.Tensor> = {}
  const { value, grads } = tf.variableGrads(() => {
    const loss = model.loss(batch.x, batch.labels, 11)
    for (const [name, t] of Object.entries(loss.terms)) kept[name] = tf.keep(t)
    return loss.objective
  }, model.parameters.trainable())
  const terms = Object.fromEntries(Object.entries(await readAndDispose(kept)).map(([name, v]) => [name, v[0]]))
  // Gradients by the model's own parameter names (variable names carry a per-store prefix).
  const named: Record<string, tf.Tensor> = {}
  for (const [name, variable] of model.parameters.entries()) if (grads[variable.name]) named[name] = grads[variable.name]
  const byName = await readAndDispose(named)
  tf.dispose([value, batch.x, batch.labels ?? [], ...Object.values(grads)])
  model.dispose()
  return { terms, grads: byName }
}

describe.skipIf(!enabled)('the webgpu backend (reason when skipped: no WebGPU adapter here; scripts/test.mjs enables it with SwiftShader)', () => {
  let adapter: AdapterReport
  const cpu = new Map<ModelFamily, Awaited<ReturnType<typeof lossAndGradients>>>()

  beforeAll(async () => {
    await tf.setBackend('cpu')
    for (const family of families) cpu.set(family, await lossAndGradients(configFor(family)))
    adapter = await activateWebGpu()
  }, 300_000)

  afterAll(async () => {
    await tf.setBackend('cpu')
  })

  it('runs on the adapter Dawn found, and says whether it is software', () => {
    expect(tf.getBackend()).toBe('webgpu')
    expect(adapter.vendor.length).toBeGreaterThan(0)
    if (/swiftshader/i.test(adapter.architecture)) expect(adapter.software).toBe(true)
  })

  for (const family of families) {
    it(`gives the ${family}'s loss terms and every gradient as the cpu backend does`, async () => {
      const reference = cpu.get(family)!
      const gpu = await lossAndGradients(configFor(family))
      for (const [name, v] of Object.entries(reference.terms)) expect(Math.abs(gpu.terms[name] - v) / Math.max(1, Math.abs(v)), name).toBeLessThan(1e-4)
      expect(Object.keys(gpu.grads).sort()).toEqual(Object.keys(reference.grads).sort())
      for (const [name, g] of Object.entries(reference.grads)) {
        const scale = g.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-6)
        let worst = 0
        g.forEach((v, i) => (worst = Math.max(worst, Math.abs(gpu.grads[name][i] - v))))
        expect(worst / scale, name).toBeLessThan(1e-3)
      }
    }, 300_000)
  }

  it('trains each model: three steps on a batch lower its loss', async () => {
    for (const family of families) {
      const model = createModel(configFor(family))
      const trainer = new Trainer(model, data, { epochs: 1, batchSize: 16, learningRate: 3e-3, seed: 2, checkpointEverySteps: 1e9 })
      const batch = data.trainIndices.subarray(0, 16)
      const losses: number[] = []
      for (const i of [0, 1, 2, 3]) losses.push((await trainer.step(batch, 5, i)).total)
      expect(losses[3], family).toBeLessThan(losses[0])
      trainer.dispose()
      model.dispose()
    }
  }, 300_000)

  it('writes checkpoints that the wasm backend restores to the same held-out figures', async () => {
    const model = createModel(configFor('cdvae'))
    const trainer = new Trainer(model, data, { epochs: 1, batchSize: 16, learningRate: 3e-3, seed: 2, checkpointEverySteps: 1e9 })
    for (let i = 0; i < 2; i++) await trainer.step(data.trainIndices.subarray(i * 16, (i + 1) * 16), 7, i)
    const onGpu = await evaluate(model, data, data.heldOutIndices, 24, 5)
    const checkpoint = await serializeCheckpoint(model, trainer.optimizer, trainer.position)
    trainer.dispose()
    model.dispose()
    registerWasmKernels()
    await tf.setBackend('wasm')
    const restored = await restoreCheckpoint(checkpoint)
    const onWasm = await evaluate(restored, data, data.heldOutIndices, 24, 5)
    for (const [term, value] of Object.entries(onGpu)) expect(Math.abs(onWasm[term] - value) / Math.max(1, Math.abs(value)), term).toBeLessThan(1e-4)
    restored.dispose()
  }, 300_000)
})
