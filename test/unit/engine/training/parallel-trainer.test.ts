// Data-parallel training over worker threads (electron/engine/training/parallel-trainer.ts): the loss falls,
// runs reproduce from a seed, the replicas stay identical, a run resumed from a checkpoint ends
// where an uninterrupted one does, and pause, cancel and the NaN guard behave as Trainer's do.
// vitest runs TypeScript sources, so the workers run training/worker.ts through tsx's require hook.
import { mkdtemp } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import * as tf from '@tensorflow/tfjs'
import '@tensorflow/tfjs-backend-wasm'
import { describe, expect, it } from 'vitest'
import { restoreCheckpoint, restoreOptimizerState, serializeCheckpoint } from '../../../../models/checkpoint'
import { evaluate, TrainingCancelledError, TrainingDivergedError, type TrainOptions } from '../../../../models/train'
import { ParallelTrainer } from '../../../../electron/engine/training/parallel-trainer'
import { RunFolder } from '../../../../electron/engine/run/folder'
import { flattenWeights, getOptimizerState, ReplicaAdam, setOptimizerState } from '../../../../electron/engine/training/replica'
import { data, modelFor, trainOptions, useWasmBackend } from '../../training-fixture'

const tsxHook = createRequire(import.meta.url).resolve('tsx/cjs')
const workerSource = fileURLToPath(new URL('../../../../electron/engine/training/worker.ts', import.meta.url))
const spawn = () => new Worker(`require(${JSON.stringify(tsxHook)}); require(${JSON.stringify(workerSource)})`, { eval: true })

useWasmBackend()
const options = trainOptions

const trainerFor = (model: ReturnType<typeof modelFor>, overrides: Partial<TrainOptions> = {}) =>
  new ParallelTrainer(model, data, options(overrides), { workers: 2, spawn })

function maxDifference(a: Float32Array, b: Float32Array): number {
  let max = 0
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]))
  return max
}

describe("the workers' Adam (ReplicaAdam)", () => {
  const shapes = [[3, 4], [5]]
  const sizes = shapes.map((shape) => shape.reduce((a, b) => a * b, 1))
  /** Two workers' gradient rows for step `t` (every variable at its offset), deterministic. */
  const rows = (t: number): Float32Array[] =>
    [0, 1].map((k) => Float32Array.from({ length: sizes[0] + sizes[1] }, (_, j) => Math.sin(1.7 * j + 3.1 * t + 5.3 * k) * (k + 1)))
  const shares = [0.75, 0.25]

  /** Steps `from` to `to` with the two rows' weighted mean, on tf.train.adam and on ReplicaAdam. */
  function run(tfAdam: tf.AdamOptimizer, tfVariables: tf.Variable[], adam: ReplicaAdam, weights: Float32Array[], from: number, to: number): void {
    for (let t = from; t < to; t++) {
      const [a, b] = rows(t)
      let offset = 0
      const named: Record<string, tf.Tensor> = {}
      const mean = Float32Array.from(a, (x, j) => x * shares[0] + b[j] * shares[1])
      tfVariables.forEach((v, i) => {
        named[v.name] = tf.tensor(mean.subarray(offset, offset + sizes[i]), shapes[i])
        offset += sizes[i]
      })
      tfAdam.applyGradients(named as tf.NamedTensorMap as Parameters<tf.AdamOptimizer['applyGradients']>[0])
      tf.dispose(Object.values(named))
      adam.beginStep()
      offset = 0
      weights.forEach((w, i) => {
        // As the workers do it: read the weights, write the step's result elsewhere.
        const next = new Float32Array(w.length)
        adam.update(i, { name: tfVariables[i].name, shape: shapes[i] }, w, next, mean, offset)
        w.set(next)
        offset += sizes[i]
      })
      adam.endStep()
    }
  }

  function maxRelativeDifference(variables: tf.Variable[], weights: Float32Array[]): number {
    let max = 0
    variables.forEach((v, i) => {
      const expected = v.dataSync()
      for (let j = 0; j < expected.length; j++) max = Math.max(max, Math.abs(expected[j] - weights[i][j]) / Math.max(1e-3, Math.abs(expected[j])))
    })
    return max
  }

  it("updates weights as tf.train.adam does, and its state moves to and from tf.train.adam's", async () => {
    const initial = sizes.map((size, i) => Float32Array.from({ length: size }, (_, j) => Math.cos(j + i)))
    const variables = initial.map((w, i) => tf.variable(tf.tensor(w, shapes[i]), true, `replica-adam-test/${i}`))
    const weights = initial.map((w) => w.slice())
    const tfAdam = tf.train.adam(0.05)
    const adam = new ReplicaAdam(0.05)
    run(tfAdam, variables, adam, weights, 0, 6)
    // The weights moved by many learning rates (so the test can fail), and stayed together.
    const moved = Math.max(...weights.flatMap((w, i) => Array.from(w, (x, j) => Math.abs(x - initial[i][j]))))
    expect(moved).toBeGreaterThan(0.05)
    expect(maxRelativeDifference(variables, weights)).toBeLessThan(1e-5)

    // Its state, in tf.train.adam's format, continues in tf.train.adam as if it had never left.
    const state = adam.state()
    expect(state.iterations).toBe(6)
    expect(state.slots.map((s) => s.name)).toEqual(['replica-adam-test/0/m', 'replica-adam-test/1/m', 'replica-adam-test/0/v', 'replica-adam-test/1/v'])
    expect(state.slots[0].shape).toEqual([3, 4])
    const tfState = await getOptimizerState(tfAdam)
    for (const [i, slot] of state.slots.entries()) {
      for (let j = 0; j < slot.values.length; j++) expect(slot.values[j]).toBeCloseTo(tfState.slots[i].values[j], 6)
    }
    const resumedTf = tf.train.adam(0.05)
    await setOptimizerState(resumedTf, state)
    const resumedVariables = weights.map((w, i) => tf.variable(tf.tensor(w, shapes[i]), true, `replica-adam-test/resumed/${i}`))
    // And tf.train.adam's state continues in a ReplicaAdam.
    const fromTf = new ReplicaAdam(0.05)
    fromTf.load(await getOptimizerState(tfAdam))
    const fromTfWeights = variables.map((v) => (v.dataSync() as Float32Array).slice())
    run(resumedTf, resumedVariables, fromTf, fromTfWeights, 6, 10)
    run(tfAdam, variables, adam, weights, 6, 10)
    expect(maxRelativeDifference(variables, weights)).toBeLessThan(1e-5)
    expect(maxRelativeDifference(resumedVariables, weights)).toBeLessThan(1e-5)
    expect(maxRelativeDifference(variables, fromTfWeights)).toBeLessThan(1e-5)
    for (const o of [tfAdam, resumedTf]) o.dispose()
    tf.dispose([...variables, ...resumedVariables])
  })
})

describe('data-parallel training on 2 worker threads', () => {
  it("the held-out loss falls well below the untrained model's, on wasm, with flat tensor memory here", async () => {
    const model = modelFor()
    const before = await evaluate(model, data, data.heldOutIndices)
    const trainer = trainerFor(model)
    const heldOut: number[] = []
    const tensorsPerEpoch: number[] = []
    await trainer.run({
      onEpoch: (summary) => {
        heldOut.push(summary.heldOut.total)
        tensorsPerEpoch.push(tf.memory().numTensors)
      }
    })
    expect(trainer.workerBackend).toBe('wasm')
    expect(trainer.description).toBe('2 wasm threads')
    expect(heldOut).toHaveLength(3)
    expect(heldOut[2]).toBeLessThan(before.total * 0.8)
    expect(heldOut[2]).toBeLessThan(heldOut[0])
    // The epoch's evaluation ran on this thread's model: it got the workers' weights.
    const after = await evaluate(model, data, data.heldOutIndices, 500, 5 + 17)
    expect(after.total).toBeCloseTo(heldOut[2], 4)
    expect(new Set(tensorsPerEpoch).size).toBe(1)
    trainer.dispose()
    model.dispose()
  })

  it('reproduces a run exactly from its seed, with the same shuffles and steps per epoch', async () => {
    const losses: number[][] = []
    for (let run = 0; run < 2; run++) {
      const model = modelFor('vae', 7)
      const trainer = trainerFor(model, { epochs: 1 })
      const seen: number[] = []
      const positions: number[] = []
      await trainer.run({ onStep: (p) => (seen.push(p.loss), positions.push(p.globalStep)) })
      expect(positions).toEqual(Array.from({ length: trainer.stepsPerEpoch }, (_, i) => i + 1))
      losses.push(seen)
      trainer.dispose()
      model.dispose()
    }
    expect(losses[0]).toEqual(losses[1])
    expect(losses[0].every(Number.isFinite)).toBe(true)
  })

  it("keeps the replicas identical, and this thread's model equal to them at every checkpoint", async () => {
    const model = modelFor('vae', 8)
    const initial = flattenWeights(model.parameters)
    const trainer = trainerFor(model, { epochs: 1, checkpointEverySteps: 3 })
    let checked = 0
    await trainer.run({
      onCheckpoint: async () => {
        const [a, b] = await trainer.replicaWeights()
        expect(maxDifference(a, b)).toBe(0)
        expect(maxDifference(a, flattenWeights(model.parameters))).toBe(0)
        expect(maxDifference(a, initial)).toBeGreaterThan(0)
        checked++
      }
    })
    expect(checked).toBeGreaterThanOrEqual(3)
    trainer.dispose()
    model.dispose()
  })

  it('three workers (CARTOGRAPHER_TRAIN_WORKERS=3) keep identical replicas and lower the loss', async () => {
    const model = modelFor('vae', 14)
    const before = await evaluate(model, data, data.heldOutIndices)
    const trainer = new ParallelTrainer(model, data, options({ epochs: 2 }), { workers: 3, spawn })
    let heldOut = Infinity
    await trainer.run({
      onEpoch: async (summary) => {
        heldOut = summary.heldOut.total
        const [a, b, c] = await trainer.replicaWeights()
        expect(maxDifference(a, b)).toBe(0)
        expect(maxDifference(a, c)).toBe(0)
      }
    })
    expect(heldOut).toBeLessThan(before.total * 0.9)
    trainer.dispose()
    model.dispose()
  })

  it('a last batch of one item (one worker idle) still updates every replica alike', async () => {
    const model = modelFor('vae', 12)
    const trainer = trainerFor(model, { epochs: 1, batchSize: data.trainIndices.length - 1 })
    expect(trainer.stepsPerEpoch).toBe(2)
    const losses: number[] = []
    const before = flattenWeights(model.parameters)
    let checked = false
    await trainer.run({
      onStep: (p) => losses.push(p.loss),
      // The epoch's checkpoint comes right after the one-item step.
      onCheckpoint: async () => {
        const [a, b] = await trainer.replicaWeights()
        expect(maxDifference(a, b)).toBe(0)
        expect(maxDifference(a, before)).toBeGreaterThan(0)
        checked = true
      }
    })
    expect(losses).toHaveLength(2)
    expect(losses.every(Number.isFinite)).toBe(true)
    expect(checked).toBe(true)
    trainer.dispose()
    model.dispose()
  })

  it('resumes from a checkpoint written to disk to the weights of an uninterrupted run', async () => {
    const runDir = await mkdtemp(join(tmpdir(), 'cartographer-parallel-resume-'))
    const straight = modelFor('vae', 9)
    const straightTrainer = trainerFor(straight, { epochs: 2 })
    await straightTrainer.run()

    const first = modelFor('vae', 9)
    const firstTrainer = trainerFor(first, { epochs: 2, checkpointEverySteps: 4 })
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

    const saved = await new RunFolder(runDir).latestCheckpoint()
    expect(saved?.document.position).toEqual({ epoch: 1, stepInEpoch: 4, globalStep: stepsPerEpoch + 4 })
    const resumed = await restoreCheckpoint(saved!)
    const resumedTrainer = trainerFor(resumed, { epochs: 2 })
    await restoreOptimizerState(saved!, resumedTrainer.optimizer)
    resumedTrainer.position = saved!.document.position!
    // The workers start from the checkpoint's weights.
    await resumedTrainer.start()
    const [replica] = await resumedTrainer.replicaWeights()
    expect(maxDifference(replica, flattenWeights(resumed.parameters))).toBe(0)
    await resumedTrainer.run()

    expect(maxDifference(flattenWeights(straight.parameters), flattenWeights(resumed.parameters))).toBeLessThan(1e-5)
    for (const t of [straightTrainer, firstTrainer, resumedTrainer]) t.dispose()
    for (const m of [straight, first, resumed]) m.dispose()
  })

  it("pauses, resumes, and cancels, leaving this thread's model at the last step", async () => {
    const model = modelFor('vae', 10)
    const initial = flattenWeights(model.parameters)
    const trainer = trainerFor(model, { epochs: 2 })
    const steps: number[] = []
    let pausedAt = 0
    const running = trainer.run({
      onStep: (p) => {
        steps.push(p.globalStep)
        if (p.globalStep === 2) {
          trainer.pause()
          pausedAt = performance.now()
          setTimeout(() => trainer.resume(), 300)
        }
        if (p.globalStep === 5) trainer.cancel()
      }
    })
    await expect(running).rejects.toBeInstanceOf(TrainingCancelledError)
    expect(steps).toEqual([1, 2, 3, 4, 5])
    expect(performance.now() - pausedAt).toBeGreaterThanOrEqual(290)
    expect(trainer.position).toEqual({ epoch: 0, stepInEpoch: 5, globalStep: 5 })
    expect(maxDifference(flattenWeights(model.parameters), initial)).toBeGreaterThan(0)
    trainer.dispose()
    model.dispose()
  })

  it('fails the run, naming the exit, when a worker dies mid-step', async () => {
    const model = modelFor('vae', 13)
    // The second worker is ready like any other, then exits on its first step: the first one, its
    // gradient written, is waiting at the barrier for the second one's.
    const dying = `const { parentPort } = require('node:worker_threads')
      parentPort.on('message', (m) => m.type === 'init' ? parentPort.postMessage({ type: 'ready', backend: 'wasm' }) : process.exit(3))`
    let spawned = 0
    const trainer = new ParallelTrainer(model, data, options({ epochs: 1 }), {
      workers: 2,
      spawn: () => (spawned++ === 1 ? new Worker(dying, { eval: true }) : spawn())
    })
    const error = await trainer.run().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(Error)
    expect((error as Error).message).toMatch(/training worker (stopped \(exit code 3\)|: another training worker failed)/)
    expect(trainer.position.globalStep).toBe(0)
    trainer.dispose()
    model.dispose()
  })

  it('stops on NaN naming the term that blew up', async () => {
    const model = modelFor('vae', 11)
    const logvarBias = model.parameters.entries().find(([name]) => name === 'encoder/z/logvar/bias')![1]
    logvarBias.assign(tf.fill(logvarBias.shape, Number.POSITIVE_INFINITY))
    const trainer = trainerFor(model, { epochs: 1 })
    const error = await trainer.run().catch((e: unknown) => e)
    expect(error).toBeInstanceOf(TrainingDivergedError)
    expect((error as TrainingDivergedError).term).not.toBe('total')
    expect((error as Error).message).toMatch(/"(kl_z|reconstruction_x)" term became NaN or infinite/)
    expect(trainer.position.globalStep).toBe(0)
    trainer.dispose()
    model.dispose()
  })
})
