// Training on real generated data: the loss falls, memory stays flat, runs reproduce from a seed,
// a killed run resumes exactly from its checkpoint, and NaN stops training naming the term.
import { mkdtemp, readdir, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tf from '@tensorflow/tfjs'
import '@tensorflow/tfjs-backend-wasm'
import { describe, expect, it } from 'vitest'
import { restoreCheckpoint, restoreOptimizerState, serializeCheckpoint } from '../../../models/checkpoint'
import { createModel, defaultModelConfig, type ModelFamily } from '../../../models/index'
import { evaluate, Trainer, TrainingCancelledError, TrainingDivergedError } from '../../../models/train'
import { RunFolder } from '../../../electron/engine/run/folder'
import { data, modelFor, trainOptions, useWasmBackend } from '../training-fixture'

useWasmBackend()
const options = trainOptions

describe('training', () => {
  for (const family of ['vae', 'srvae', 'cdvae'] as ModelFamily[]) {
    it(`the ${family} held-out loss falls well below the untrained model's, with flat tensor memory`, async () => {
      const model = modelFor(family)
      const before = await evaluate(model, data, data.heldOutIndices)
      const trainer = new Trainer(model, data, options())
      const tensorsPerEpoch: number[] = []
      const heldOut: number[] = []
      await trainer.run({
        onEpoch: (summary) => {
          heldOut.push(summary.heldOut.total)
          tensorsPerEpoch.push(tf.memory().numTensors)
        }
      })
      expect(heldOut).toHaveLength(3)
      expect(heldOut[2]).toBeLessThan(before.total * 0.8)
      expect(heldOut[2]).toBeLessThan(heldOut[0])
      // Every term of models.md is reported.
      const terms = Object.keys(before)
      if (family === 'srvae') expect(terms).toEqual(expect.arrayContaining(['reconstruction_x', 'reconstruction_y', 'log_gamma_y', 'kl_u', 'kl_z']))
      if (family === 'cdvae') expect(terms).toEqual(expect.arrayContaining(['reconstruction_x', 'kl_z_l', 'kl_z_u']))
      expect(new Set(tensorsPerEpoch).size).toBe(1)
      trainer.optimizer.dispose()
      model.dispose()
    })
  }

  it('the CDVAE free classifier argmax_c log p(mu_l(x) | c) separates a separable toy set', async () => {
    // Three classes of 8x8 images: bright top half, bright left half, bright centre, with noise.
    const n = 300
    const pixels = new Uint8Array(n * 64)
    const labels = new Int32Array(n)
    let seed = 12345
    const noise = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 60
    for (let i = 0; i < n; i++) {
      const c = i % 3
      labels[i] = c
      for (let r = 0; r < 8; r++)
        for (let col = 0; col < 8; col++) {
          const on = c === 0 ? r < 4 : c === 1 ? col < 4 : r >= 2 && r < 6 && col >= 2 && col < 6
          pixels[i * 64 + r * 8 + col] = Math.round((on ? 190 : 20) + noise())
        }
    }
    const indices = Array.from({ length: n }, (_, i) => i)
    const toy = {
      shape: { height: 8, width: 8, channels: 1 },
      pixels,
      labels,
      numClasses: 3,
      trainIndices: Int32Array.from(indices.filter((i) => i % 5 !== 0)),
      heldOutIndices: Int32Array.from(indices.filter((i) => i % 5 === 0))
    }
    const model = createModel(defaultModelConfig('cdvae', toy.shape, 3, { latentDims: { z_l: 2, z_u: 2 }, seed: 2 }))
    const trainer = new Trainer(model, toy, options({ epochs: 15 }))
    await trainer.run()
    const heldOut = Array.from(toy.heldOutIndices)
    const x = tf.tensor4d(Float32Array.from(heldOut.flatMap((i) => Array.from(pixels.subarray(i * 64, (i + 1) * 64), (v) => v / 255))), [
      heldOut.length,
      8,
      8,
      1
    ])
    const predicted = model.classLogLikelihoods(x)!.argMax(1).dataSync()
    const correct = heldOut.filter((item, j) => predicted[j] === labels[item]).length
    expect(correct / heldOut.length).toBeGreaterThan(0.9)
    trainer.optimizer.dispose()
    model.dispose()
  })

  it('reproduces the first steps from seed 0 too (tfjs takes a seed of 0 as "no seed")', async () => {
    const firstSteps: number[][] = []
    for (let run = 0; run < 2; run++) {
      const model = modelFor('cdvae', 0)
      const trainer = new Trainer(model, data, options({ epochs: 1, seed: 0 }))
      const losses: number[] = []
      for (const i of [0, 1, 2]) losses.push((await trainer.step(data.trainIndices.subarray(i * 32, (i + 1) * 32), i, i)).total)
      firstSteps.push(losses)
      trainer.optimizer.dispose()
      model.dispose()
    }
    expect(firstSteps[0]).toEqual(firstSteps[1])
    const held = await Promise.all(
      [0, 1].map(async () => {
        const model = modelFor('vae', 0)
        const values = await evaluate(model, data, data.heldOutIndices, 500, 0)
        model.dispose()
        return values.total
      })
    )
    expect(held[0]).toBe(held[1])
  })

  it('reproduces a run exactly from its seed on the same backend', async () => {
    const losses: number[][] = []
    for (let run = 0; run < 2; run++) {
      const model = modelFor('vae', 7)
      const trainer = new Trainer(model, data, options({ epochs: 1 }))
      const seen: number[] = []
      await trainer.run({ onStep: (p) => seen.push(p.loss) })
      losses.push(seen)
      trainer.optimizer.dispose()
      model.dispose()
    }
    expect(losses[0]).toEqual(losses[1])
  })

  it('resumes from a checkpoint written to disk to exactly the weights of an uninterrupted run', async () => {
    const runDir = await mkdtemp(join(tmpdir(), 'cartographer-resume-'))
    const straight = modelFor('vae', 9)
    const straightTrainer = new Trainer(straight, data, options({ epochs: 2 }))
    await straightTrainer.run()

    // Interrupted: checkpoints every 4 steps; the "process dies" after epoch 1, step 5.
    const first = modelFor('vae', 9)
    const firstTrainer = new Trainer(first, data, options({ epochs: 2, checkpointEverySteps: 4 }))
    const stepsPerEpoch = firstTrainer.stepsPerEpoch
    await expect(
      firstTrainer.run({
        onStep: (p) => {
          if (p.globalStep === stepsPerEpoch + 5) firstTrainer.cancel()
        },
        onCheckpoint: async (position) => {
          await new RunFolder(runDir).saveCheckpoint(await serializeCheckpoint(first, firstTrainer.optimizer, position), position.globalStep)
        }
      })
    ).rejects.toBeInstanceOf(TrainingCancelledError)
    // A half-written file from the crash lies beside the checkpoint; the reader ignores it.
    await writeFile(join(runDir, 'latest.json.tmp-999-1'), '{"checkpoint": "ckpt-')

    const saved = await new RunFolder(runDir).latestCheckpoint()
    expect(saved?.document.position).toEqual({ epoch: 1, stepInEpoch: 4, globalStep: stepsPerEpoch + 4 })
    const resumed = await restoreCheckpoint(saved!)
    const resumedTrainer = new Trainer(resumed, data, options({ epochs: 2 }))
    await restoreOptimizerState(saved!, resumedTrainer.optimizer)
    resumedTrainer.position = saved!.document.position!
    await resumedTrainer.run()

    const a = straight.parameters.entries()
    const b = resumed.parameters.entries()
    for (let i = 0; i < a.length; i++) {
      const diff = tf.tidy(() => a[i][1].sub(b[i][1]).abs().max().dataSync()[0])
      expect(diff, a[i][0]).toBeLessThan(1e-5)
    }
    expect((await readdir(runDir)).filter((f) => f.startsWith('ckpt-'))).toHaveLength(1)
  })

  it('stops on NaN, names the term that blew up, and leaves the last good checkpoint usable', async () => {
    const model = modelFor('vae', 11)
    const trainer = new Trainer(model, data, options({ epochs: 1 }))
    await trainer.step(Int32Array.from([0, 1, 2, 3]), 1)
    const good = await serializeCheckpoint(model, trainer.optimizer, trainer.position)
    const logvarBias = model.parameters.entries().find(([name]) => name === 'encoder/z/logvar/bias')![1]
    logvarBias.assign(tf.fill(logvarBias.shape, Number.POSITIVE_INFINITY))
    const error = await trainer.run().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(TrainingDivergedError)
    expect((error as TrainingDivergedError).term).not.toBe('total')
    expect((error as Error).message).toMatch(/"(kl_z|reconstruction_x)" term became NaN or infinite/)
    const restored = await restoreCheckpoint(good)
    const check = await evaluate(restored, data, data.heldOutIndices)
    expect(Number.isFinite(check.total)).toBe(true)
  })
})
