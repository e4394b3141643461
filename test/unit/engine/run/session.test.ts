// A run's life as the Engine and the CLI share it (electron/engine/run/session.ts): a new run
// writes run.json and trains with checkpoints, finishing writes history.json and outcome.json, its
// latents and metrics are stored with the weights' digest, a resume keeps the options it was
// started with, and a run that diverges is rolled back to its last good checkpoint.
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tf from '@tensorflow/tfjs'
import { describe, expect, it } from 'vitest'
import { RunFolder } from '../../../../electron/engine/run/folder'
import { weightsDigest } from '../../../../electron/engine/run/measure'
import { encodeAndStore, measureAndStore, readResumable, resumeRun, startRun } from '../../../../electron/engine/run/session'
import { evaluate } from '../../../../models/train'
import { dataset, useWasmBackend } from '../../training-fixture'

// In-process training: the test reaches into the trainer's model to make it diverge.
process.env.CARTOGRAPHER_TRAIN_WORKERS = '1'
useWasmBackend()

const args = { family: 'vae' as const, epochs: 1, latentDim: 4, maxTrainItems: 96, seed: 2, batchSize: 32, learningRate: 2e-3 }

async function trainedRun() {
  const folder = new RunFolder(join(await mkdtemp(join(tmpdir(), 'cartographer-session-')), 'run'))
  const run = await startRun(folder, dataset, args, 'wasm')
  return { folder, run, ended: await run.train() }
}

describe("a run's life", () => {
  it('starts, trains with checkpoints, stores how it ended, its latents and its metrics', async () => {
    const { folder, run, ended } = await trainedRun()
    expect(ended).toEqual({ outcome: 'completed', message: 'trained 1 epochs' })
    const record = await folder.readRecord()
    expect(record).toMatchObject({ maxTrainItems: 96, dataset: dataset.report.source, options: { epochs: 1, seed: 2, batchSize: 32 } })
    expect(record.config.latentDims).toEqual({ z: 4 })
    expect(await folder.readOutcome()).toMatchObject({ state: 'finished' })
    const history = JSON.parse(await readFile(join(folder.dir, 'history.json'), 'utf8'))
    expect(history).toHaveLength(1)
    expect(history[0].heldOut.total).toBeGreaterThan(0)
    // 96 items in batches of 32: the epoch's end is step 3.
    expect((await folder.latestPointer())?.step).toBe(3)

    const { latents, weights } = await encodeAndStore(folder, run.model, dataset)
    expect(weights).toBe(await weightsDigest(run.model))
    const stored = await folder.readLatents()
    expect(stored.weights).toBe(weights)
    expect(stored.count).toBe(dataset.split.length)
    expect(Array.from(stored.latents.get('z')!.values.subarray(0, 8))).toEqual(Array.from(latents.get('z')!.values.subarray(0, 8)))
    const metrics = await measureAndStore(folder, run.model, dataset, latents)
    expect((await folder.readMetrics())?.heldOut.total).toBeCloseTo(metrics.heldOut.total, 4)
    expect(metrics.knn5.z).toBeGreaterThan(1 / dataset.classNames.length)
    run.model.dispose()
  })

  it('resumes with the options it was started with; only the epochs may change', async () => {
    const { folder, run } = await trainedRun()
    run.model.dispose()
    expect((await readResumable(folder)).finished).toBe(true)
    const resumable = await readResumable(folder, 2)
    expect(resumable).toMatchObject({ finished: false, position: { epoch: 1 }, options: { epochs: 2, seed: 2, batchSize: 32 } })
    const resumed = await resumeRun(resumable, dataset, 'wasm')
    // The item cap holds: 96 items, 3 steps an epoch.
    expect(resumed.trainer.stepsPerEpoch).toBe(3)
    expect((await folder.readRecord()).options.epochs).toBe(2)
    expect((await resumed.train()).outcome).toBe('completed')
    expect(resumed.history.map((h) => h.epoch)).toEqual([1, 2])
    expect((await folder.latestCheckpointDocument())?.position?.epoch).toBe(2)
    resumed.model.dispose()
  })

  it('rolls a diverged run back to its last good checkpoint and says so in outcome.json', async () => {
    const { folder, run } = await trainedRun()
    run.model.dispose()
    const resumed = await resumeRun(await readResumable(folder, 2), dataset, 'wasm')
    const logvarBias = resumed.model.parameters.entries().find(([name]) => name === 'encoder/z/logvar/bias')![1]
    logvarBias.assign(tf.fill(logvarBias.shape, Number.POSITIVE_INFINITY))
    const ended = await resumed.train()
    expect(ended.outcome).toBe('failed')
    expect(ended.message).toMatch(/term became NaN or infinite.*rolled back to its last good checkpoint/)
    expect(await folder.readOutcome()).toMatchObject({ state: 'failed', message: ended.message })
    const check = await evaluate(resumed.model, resumed.trainer.data, resumed.trainer.data.heldOutIndices)
    expect(Number.isFinite(check.total)).toBe(true)
    resumed.model.dispose()
  })
})
