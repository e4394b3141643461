// The figures a run reports about its latent spaces (models/metrics.ts): k-NN class accuracy,
// the free classifier's accuracy, and the warnings the health panel shows.
import * as tf from '@tensorflow/tfjs'
import { describe, expect, it } from 'vitest'
import { argmaxAccuracy, knnClassAccuracy, latentWarnings } from '../../../models/metrics'
import type { SpaceHealth } from '../../../models/train'
import { useWasmBackend } from '../training-fixture'

useWasmBackend()

const health = (klPerDim: number[], activeUnits: number): SpaceHealth => ({
  klPerDim,
  meanVariance: klPerDim.map(() => (activeUnits > 0 ? 1 : 0)),
  activeUnits
})

describe('knnClassAccuracy', () => {
  it('counts the majority class of the k nearest references, chunk by chunk', async () => {
    // References: class 0 around x = 0, class 1 around x = 10 (1-d).
    const refs = Float32Array.from([0, 0.1, 0.2, 10, 10.1, 10.2])
    const refLabels = [0, 0, 0, 1, 1, 1]
    const queries = Float32Array.from([0.05, 9.9, 5.2, 4.8])
    // 5.2 is nearer class 1's points, 4.8 class 0's: with k = 3 both are decided by their side.
    expect(await knnClassAccuracy(queries, [0, 1, 1, 0], refs, refLabels, 1, 3)).toBe(1)
    expect(await knnClassAccuracy(queries, [1, 0, 0, 1], refs, refLabels, 1, 3)).toBe(0)
    expect(await knnClassAccuracy(queries, [0, 1, 0, 0], refs, refLabels, 1, 3)).toBe(0.75)
    await expect(knnClassAccuracy(queries, [0], refs, refLabels, 1, 3)).rejects.toThrow(/labels do not match/)
  })
})

describe('argmaxAccuracy', () => {
  it("is the share of rows whose maximum is the item's label", async () => {
    const scores = tf.tensor2d([
      [0, 1, 2],
      [5, 1, 0],
      [0, 3, 1],
      [1, 0, 0]
    ])
    expect(await argmaxAccuracy(scores, [2, 0, 1, 2])).toBe(0.75)
    scores.dispose()
  })
})

describe('latentWarnings', () => {
  it('warns of a collapsed space, of a space whose means do not vary, and of a class leaking into the free space', () => {
    const healthy = { z_l: health([2, 3], 2), z_u: health([1, 1.5], 2) }
    expect(latentWarnings(healthy, { z_l: 0.9, z_u: 0.2 }, 'z_u', 0.1)).toEqual([])
    const collapsed = latentWarnings({ ...healthy, z_u: health([0.1, 0.05], 0) }, {}, 'z_u', null)
    expect(collapsed).toHaveLength(1)
    expect(collapsed[0]).toMatch(/^z_u carries almost nothing: 0.15 nats, 0 of 2 dimensions active/)
    const still = latentWarnings({ ...healthy, z_l: health([4, 4.2], 0) }, {}, 'z_u', null)
    expect(still).toHaveLength(1)
    expect(still[0]).toMatch(/^z_l tells the items apart by nothing: .*0 of 2 dimensions active.*8.20 nats/)
    const leak = latentWarnings(healthy, { z_l: 0.9, z_u: 0.66 }, 'z_u', 0.1)
    expect(leak).toEqual(["the class leaks into z_u: its 5-NN class accuracy is 66% (chance 10%), so a class grid's rows may not keep one style"])
  })
})
