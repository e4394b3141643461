// The training objective against the ELBO it stands in for: weights, free bits and warm-up change
// what is differentiated and never what is reported; the class-independence term against its
// closed form; the class adversary's two gradients and what they do; class prior layouts; seeds that tfjs would ignore.
import * as tf from '@tensorflow/tfjs'
import { beforeAll, describe, expect, it } from 'vitest'
import { createModel, defaultModelConfig, type ModelConfig } from '../../../models/index'
import {
  adversarialClassTerm,
  assembleLoss,
  classConditionalMmd,
  describeObjective,
  ELBO_OBJECTIVE,
  standardizeColumns,
  warmupFactor,
  type ObjectiveConfig
} from '../../../models/objective'
import { separatedPoints } from '../../../models/priors'
import { seededRandom, tfSeed } from '../../../models/random'
import { reparameterize, stopGradient } from '../../../models/distributions'

beforeAll(async () => {
  await tf.setBackend('cpu')
})

const image8 = { height: 8, width: 8, channels: 1 }
const batchOf = (n: number) =>
  tf.tensor4d(
    Array.from({ length: n * 64 }, (_, i) => ((i * 37) % 101) / 100),
    [n, 8, 8, 1]
  )
const value = (t: tf.Tensor): number => t.dataSync()[0]
const objective = (overrides: Partial<ObjectiveConfig>): ObjectiveConfig => ({ ...ELBO_OBJECTIVE, ...overrides })

describe('assembleLoss', () => {
  const likelihood = { reconstruction_x: tf.tensor1d([10, 20]) }
  // Two items, two spaces: per-dimension KL [item, dim].
  const klPerDim = {
    a: tf.tensor2d([
      [0.1, 2],
      [0.3, 4]
    ]),
    b: tf.tensor2d([
      [1, 1],
      [3, 1]
    ])
  }

  it('reports the ELBO terms and, with the default objective, differentiates exactly them', () => {
    const loss = assembleLoss(likelihood, klPerDim, ELBO_OBJECTIVE)
    expect(value(loss.terms.reconstruction_x)).toBeCloseTo(15, 6)
    expect(value(loss.terms.kl_a)).toBeCloseTo((2.1 + 4.3) / 2, 6)
    expect(value(loss.terms.kl_b)).toBeCloseTo(3, 6)
    expect(value(loss.total)).toBeCloseTo(15 + 3.2 + 3, 5)
    expect(value(loss.objective)).toBeCloseTo(value(loss.total), 5)
    expect(Array.from(loss.klPerDim.a.dataSync())).toEqual([expect.closeTo(0.2, 6), expect.closeTo(3, 6)])
    expect(describeObjective(ELBO_OBJECTIVE)).toBe('the ELBO')
  })

  it('weighs each space, spares free bits per dimension of the batch mean, and leaves total alone', () => {
    const weighted = assembleLoss(likelihood, klPerDim, objective({ klWeights: { a: 4 } }))
    expect(value(weighted.total)).toBeCloseTo(21.2, 5)
    expect(value(weighted.objective)).toBeCloseTo(15 + 4 * 3.2 + 3, 4)
    // Free bits 0.5: dimension means a = [0.2, 3], b = [2, 1]: a's first is charged 0.5.
    const freeBits = assembleLoss(likelihood, klPerDim, objective({ freeBits: 0.5 }))
    expect(value(freeBits.objective)).toBeCloseTo(15 + 0.5 + 3 + 2 + 1, 4)
    expect(value(freeBits.total)).toBeCloseTo(21.2, 5)
    expect(describeObjective(objective({ freeBits: 0.5 }))).toBe('free bits 0.5 nats/dim (the reported loss stays the ELBO)')
  })

  it('ramps the KL weights up linearly over the warm-up, and not at all outside training', () => {
    const warm = objective({ warmupSteps: 10 })
    expect(warmupFactor(warm, 0)).toBeCloseTo(0.1)
    expect(warmupFactor(warm, 4)).toBeCloseTo(0.5)
    expect(warmupFactor(warm, 50)).toBe(1)
    expect(warmupFactor(warm, undefined)).toBe(1)
    const loss = assembleLoss(likelihood, klPerDim, warm, 4)
    expect(value(loss.objective)).toBeCloseTo(15 + 0.5 * 6.2, 4)
    expect(value(loss.total)).toBeCloseTo(21.2, 5)
  })
})

describe('the class-independence term (class-conditional MMD to the prior)', () => {
  /** The estimator written out in float64: per class, unbiased within terms, then item-weighted. */
  function mmdByHand(points: number[][], labels: number[], prior: number[][]): number {
    const d = points[0].length
    const k = (a: number[], b: number[]) => (2 * d) / (2 * d + a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0))
    const m = prior.length
    let priorWithin = 0
    for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) if (i !== j) priorWithin += k(prior[i], prior[j])
    priorWithin /= m * (m - 1)
    let weighted = 0
    let weights = 0
    for (const c of new Set(labels)) {
      const members = points.filter((_, i) => labels[i] === c)
      const n = members.length
      if (n < 2) continue
      let within = 0
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j) within += k(members[i], members[j])
      let across = 0
      for (const a of members) for (const b of prior) across += k(a, b)
      weighted += n * (within / (n * (n - 1)) - (2 * across) / (n * m) + priorWithin)
      weights += n
    }
    return weighted / weights
  }

  it('is the unbiased per-class MMD estimate, written out by hand', () => {
    const random = seededRandom(7)
    const points = Array.from({ length: 9 }, () => [random() * 3 - 1, random() * 2])
    const labels = [0, 0, 0, 1, 1, 2, 2, 2, 3]
    const prior = Array.from({ length: 6 }, () => [random() * 2 - 1, random() * 2 - 1])
    const value = classConditionalMmd(tf.tensor2d(points), tf.tensor1d(labels, 'int32'), 4, tf.tensor2d(prior)).dataSync()[0]
    expect(value).toBeCloseTo(mmdByHand(points, labels, prior), 5)
  })

  it('averages to 0 when every class is drawn from the prior, and grows as the classes part', () => {
    const labels = tf.tensor1d(
      Array.from({ length: 128 }, (_, i) => i % 8),
      'int32'
    )
    const estimate = (shift: number, seed: number) =>
      tf.tidy(() => {
        // Class c moves by shift * (c - 3.5) / 3.5 along every dimension.
        const offsets = labels.toFloat().sub(3.5).div(3.5).mul(shift).reshape([128, 1])
        const z = tf.randomNormal([128, 4], 0, 1, 'float32', seed).add(offsets) as tf.Tensor2D
        return classConditionalMmd(z, labels, 8, tf.randomNormal([128, 4], 0, 1, 'float32', seed + 1000) as tf.Tensor2D).dataSync()[0]
      })
    const same = Array.from({ length: 20 }, (_, i) => estimate(0, i + 1))
    const mean = same.reduce((a, b) => a + b, 0) / same.length
    expect(Math.abs(mean)).toBeLessThan(0.01)
    expect(estimate(1, 3)).toBeGreaterThan(10 * Math.abs(mean))
    expect(estimate(2, 3)).toBeGreaterThan(estimate(1, 3))
  })

  it('moves the CDVAE training objective only: total and terms stay the ELBO', () => {
    const base = defaultModelConfig('cdvae', image8, 2, { latentDims: { z_l: 2, z_u: 2 }, seed: 3, objective: ELBO_OBJECTIVE })
    const plain = createModel(base)
    const regularised = createModel({ ...base, objective: objective({ freeSpaceIndependence: 50 }) })
    const x = batchOf(6)
    const labels = tf.tensor1d([0, 1, 0, 1, 0, 1], 'int32')
    const a = plain.loss(x, labels, 9, 0)
    const b = regularised.loss(x, labels, 9, 0)
    expect(value(b.total)).toBeCloseTo(value(a.total), 4)
    expect(value(a.objective)).toBeCloseTo(value(a.total), 4)
    expect(value(b.objective)).not.toBeCloseTo(value(b.total), 2)
    plain.dispose()
    regularised.dispose()
  })
})

const stopGradientOf = (v: tf.Variable): tf.Tensor2D => stopGradient(v as tf.Tensor) as tf.Tensor2D

describe('adversarialClassTerm', () => {
  it("gives the classifier the labelled cross-entropy's gradient and the means only the uniform target's", () => {
    const weight = tf.variable(
      tf.tensor2d([
        [0.5, -0.3, 0.2],
        [0.1, 0.4, -0.6]
      ])
    )
    const bias = tf.variable(tf.tensor1d([0.1, 0, -0.1]))
    const means = tf.tensor2d([
      [1, 2],
      [-0.5, 0.3],
      [0.2, -1],
      [2, 0]
    ])
    const labels = tf.tensor1d([0, 2, 1, 2], 'int32')
    const targets = tf.oneHot(labels, 3).toFloat()
    const classifier =
      (w: tf.Tensor) =>
      (x: tf.Tensor2D, frozen: boolean): tf.Tensor2D =>
        x.matMul((frozen ? stopGradient(w) : w) as tf.Tensor2D).add(bias)
    const [gradMeans, gradWeight] = tf.grads((m: tf.Tensor, w: tf.Tensor) => adversarialClassTerm(classifier(w), m as tf.Tensor2D, labels, 3, 7))([
      means,
      weight
    ])
    // The means' gradient: 7 x that of the cross-entropy to the uniform guess, the weights held
    // (without the term's stop-gradient the labelled cross-entropy's pull would add to it).
    const expectedMeans = tf.grad((m: tf.Tensor) =>
      tf
        .logSoftmax((m as tf.Tensor2D).matMul(weight as tf.Tensor2D).add(bias))
        .mean(1)
        .mean()
        .neg()
        .mul(7)
    )(means)
    // The weights' gradient: that of the labelled cross-entropy alone, the means held.
    const expectedWeight = tf.grad((w: tf.Tensor) =>
      tf
        .logSoftmax(means.matMul(w as tf.Tensor2D).add(bias))
        .mul(targets)
        .sum(1)
        .mean()
        .neg()
    )(weight)
    gradMeans.dataSync().forEach((v, i) => expect(v).toBeCloseTo(expectedMeans.dataSync()[i], 5))
    gradWeight.dataSync().forEach((v, i) => expect(v).toBeCloseTo(expectedWeight.dataSync()[i], 5))
    // A classifier that says nothing costs log C on each side.
    const blind = adversarialClassTerm((x) => tf.zeros([x.shape[0], 3]) as tf.Tensor2D, means, labels, 3, 7)
    expect(value(blind)).toBeCloseTo(8 * Math.log(3), 5)
  })

  it('trained jointly, the classifier learns the class and the encoder hides it', () => {
    // Means = noise + shift * (class sign) in the first coordinate: the shift is the encoder's
    // one parameter; the adversary is linear. Minimising the term must first let the classifier
    // read the class, then take the shift (the class information) away.
    const n = 256
    const labels = tf.tensor1d(
      Array.from({ length: n }, (_, i) => i % 2),
      'int32'
    )
    const sign = labels.toFloat().mul(2).sub(1).reshape([n, 1])
    const noise = tf.randomNormal([n, 2], 0, 1, 'float32', 11) as tf.Tensor2D
    const shift = tf.variable(tf.scalar(3))
    const weight = tf.variable(tf.zeros([2, 2]))
    const bias = tf.variable(tf.zeros([2]))
    const adversary = (x: tf.Tensor2D, isFrozen: boolean): tf.Tensor2D =>
      isFrozen ? x.matMul(stopGradientOf(weight)).add(stopGradientOf(bias)) : x.matMul(weight as tf.Tensor2D).add(bias)
    const means = () => noise.add(tf.concat([sign.mul(shift), tf.zeros([n, 1])], 1)) as tf.Tensor2D
    const accuracy = () => tf.tidy(() => adversary(means(), false).argMax(1).equal(labels).toFloat().mean().dataSync()[0])
    // Adam keeps its moments by position in the variable list: one optimiser per list.
    const classifierAlone = tf.train.adam(0.05)
    for (let step = 0; step < 30; step++) classifierAlone.minimize(() => adversarialClassTerm(adversary, means(), labels, 2, 1), false, [weight, bias])
    expect(accuracy()).toBeGreaterThan(0.9)
    const both = tf.train.adam(0.05)
    for (let step = 0; step < 400; step++) both.minimize(() => adversarialClassTerm(adversary, means(), labels, 2, 1), false, [shift, weight, bias])
    expect(Math.abs(shift.dataSync()[0])).toBeLessThan(0.5)
    expect(accuracy()).toBeLessThan(0.7)
  })
})

describe("standardizeColumns (the class adversary's view of z_u)", () => {
  const x = tf.tensor2d([
    [1, 10],
    [2, 14],
    [4, 9],
    [5, 7]
  ])

  it('gives every column mean 0 and variance 1', () => {
    const { mean, variance } = tf.moments(standardizeColumns(x), 0)
    mean.dataSync().forEach((v) => expect(v).toBeCloseTo(0, 5))
    variance.dataSync().forEach((v) => expect(v).toBeCloseTo(1, 4))
  })

  it('does not change when the space is shrunk or moved, so hiding the class by shrinking z_u does not pay', () => {
    const shrunk = standardizeColumns(x.mul(0.01).add(3) as tf.Tensor2D).dataSync()
    standardizeColumns(x)
      .dataSync()
      .forEach((v, i) => expect(shrunk[i]).toBeCloseTo(v, 3))
    // The adversary's charge to the encoder has no gradient along the space's scale.
    const labels = tf.tensor1d([0, 1, 0, 1], 'int32')
    const weight = tf.tensor2d([
      [0.7, -0.4],
      [0.2, 0.9]
    ])
    const classifier = (v: tf.Tensor2D): tf.Tensor2D => v.matMul(weight) as tf.Tensor2D
    const scaleGradient = tf.grad((scale: tf.Tensor) => adversarialClassTerm(classifier, standardizeColumns(x.mul(scale) as tf.Tensor2D), labels, 2, 5))(
      tf.scalar(0.3)
    )
    expect(Math.abs(scaleGradient.dataSync()[0])).toBeLessThan(1e-4)
    // Without the standardisation the same charge does depend on the scale.
    const rawGradient = tf.grad((scale: tf.Tensor) => adversarialClassTerm(classifier, x.mul(scale) as tf.Tensor2D, labels, 2, 5))(tf.scalar(0.3))
    expect(Math.abs(rawGradient.dataSync()[0])).toBeGreaterThan(0.1)
  })
})

describe('class prior layouts', () => {
  const distances = (points: Float32Array, count: number, dim: number): number[] => {
    const out: number[] = []
    for (let i = 0; i < count; i++) {
      for (let j = i + 1; j < count; j++) {
        let s = 0
        for (let d = 0; d < dim; d++) s += (points[i * dim + d] - points[j * dim + d]) ** 2
        out.push(Math.sqrt(s))
      }
    }
    return out
  }

  it('puts up to dim + 1 classes near a regular simplex on the sphere of the radius', () => {
    // A regular simplex of n points on a sphere of radius r has edge r * sqrt(2n / (n - 1)).
    for (const [count, dim] of [
      [3, 2],
      [4, 3],
      [10, 16]
    ]) {
      const points = separatedPoints(count, dim, 4, seededRandom(1))
      const edge = 4 * Math.sqrt((2 * count) / (count - 1))
      for (const d of distances(points, count, dim)) expect(Math.abs(d - edge) / edge).toBeLessThan(0.05)
      for (let i = 0; i < count; i++) expect(Math.hypot(...points.subarray(i * dim, (i + 1) * dim))).toBeCloseTo(4, 4)
    }
  })

  it('keeps more classes than dimensions far apart (10 classes in 8 dimensions)', () => {
    const points = separatedPoints(10, 8, 4, seededRandom(2))
    expect(Math.min(...distances(points, 10, 8))).toBeGreaterThan(5)
    // Uniform draws in a cube of the same size come much closer: the layout is what separates.
    const uniform = Float32Array.from({ length: 80 }, seededRandom(2)).map((v) => ((v * 2 - 1) * 4) / Math.sqrt(8 / 3))
    expect(Math.min(...distances(uniform, 10, 8))).toBeLessThan(Math.min(...distances(points, 10, 8)))
  })

  it('starts a model class means at the configured radius', () => {
    const config: ModelConfig = defaultModelConfig('vae', image8, 5, { latentDims: { z: 6 }, conditionalPrior: true, classPriorRadius: 3 })
    const model = createModel(config)
    const means = (model as unknown as { prior: { means: tf.Variable } }).prior.means.arraySync() as number[][]
    for (const row of means) expect(Math.hypot(...row)).toBeCloseTo(3, 4)
    model.dispose()
  })
})

describe('seeds', () => {
  it('seed 0 repeats like any other (tfjs takes 0 as "no seed")', () => {
    const mu = tf.zeros([3, 4]) as tf.Tensor2D
    const draw = (seed: number) => Array.from(reparameterize(mu, mu, seed).dataSync())
    expect(draw(0)).toEqual(draw(0))
    expect(draw(0)).not.toEqual(draw(1))
    expect(new Set([-2, -1, 0, 1, 2].map(tfSeed)).size).toBe(5)
    expect([-2, -1, 0, 1, 2].map(tfSeed)).not.toContain(0)
  })
})
