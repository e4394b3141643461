// The importance-weighted bound (models/iwae.ts) against a model whose log p(x) is known in closed
// form: the linear Gaussian p(z) = N(0, I), p(x | z) = N(W z + b, s^2 I), for which
// p(x) = N(b, W W^T + s^2 I). With q the exact posterior every weight is p(x); with a worse q the
// bound is below log p(x), rises with K and approaches it. Then each model's importance weights
// average to its ELBO (Monte Carlo against the closed-form KL).
import * as tf from '@tensorflow/tfjs'
import { describe, expect, it } from 'vitest'
import { importanceWeightedBound, importanceWeightedLogLikelihoods } from '../../../models/iwae'
import { logNormalDiagonal } from '../../../models/distributions'
import { tfSeed } from '../../../models/random'
import { createModel, defaultModelConfig, type ModelFamily } from '../../../models/index'
import { makeBatch } from '../../../models/data'
import { generateShapes } from '../../../electron/engine/datasets/shapes'
import { trainingData } from '../../../electron/engine/run/config'
import { useWasmBackend } from '../training-fixture'

useWasmBackend()

const W = [
  [1.0, -0.5],
  [0.3, 0.8],
  [-0.7, 0.4]
]
const b = [0.2, -0.1, 0.5]
const s2 = 0.25

/** log N(x; b, W W^T + s2 I) for a 3-vector x, by hand (3x3 inverse and determinant). */
function exactLogLikelihood(x: number[]): number {
  const C = [0, 1, 2].map((i) => [0, 1, 2].map((j) => W[i][0] * W[j][0] + W[i][1] * W[j][1] + (i === j ? s2 : 0)))
  const det =
    C[0][0] * (C[1][1] * C[2][2] - C[1][2] * C[2][1]) - C[0][1] * (C[1][0] * C[2][2] - C[1][2] * C[2][0]) + C[0][2] * (C[1][0] * C[2][1] - C[1][1] * C[2][0])
  const cof = (i: number, j: number) => {
    const rows = [0, 1, 2].filter((r) => r !== j)
    const cols = [0, 1, 2].filter((c) => c !== i)
    return ((i + j) % 2 ? -1 : 1) * (C[rows[0]][cols[0]] * C[rows[1]][cols[1]] - C[rows[0]][cols[1]] * C[rows[1]][cols[0]])
  }
  const d = x.map((v, i) => v - b[i])
  let quad = 0
  for (let i = 0; i < 3; i++) for (let j = 0; j < 3; j++) quad += (d[i] * cof(i, j) * d[j]) / det
  return -0.5 * (3 * Math.log(2 * Math.PI) + Math.log(det) + quad)
}

/** The exact posterior N(m, S) of z given x: S = (I + W^T W / s2)^-1, m = S W^T (x - b) / s2. */
function exactPosterior(x: number[]): { mean: number[]; cov: number[][] } {
  const A = [0, 1].map((i) => [0, 1].map((j) => (i === j ? 1 : 0) + (W[0][i] * W[0][j] + W[1][i] * W[1][j] + W[2][i] * W[2][j]) / s2))
  const det = A[0][0] * A[1][1] - A[0][1] * A[1][0]
  const S = [
    [A[1][1] / det, -A[0][1] / det],
    [-A[1][0] / det, A[0][0] / det]
  ]
  const r = [0, 1].map((k) => (W[0][k] * (x[0] - b[0]) + W[1][k] * (x[1] - b[1]) + W[2][k] * (x[2] - b[2])) / s2)
  return { mean: [S[0][0] * r[0] + S[0][1] * r[1], S[1][0] * r[0] + S[1][1] * r[1]], cov: S }
}

/** Items x drawn from the model itself, fixed. */
const items: number[][] = (() => {
  let state = 12345
  const uniform = () => ((state = (state * 1103515245 + 12345) % 2147483648) + 0.5) / 2147483648
  const normal = () => Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform())
  return Array.from({ length: 200 }, () => {
    const z = [normal(), normal()]
    return [0, 1, 2].map((i) => W[i][0] * z[0] + W[i][1] * z[1] + b[i] + Math.sqrt(s2) * normal())
  })
})()

/**
 * One draw's log weights for every item, with q = N(m + shift, diag(scale^2 * var)) (a diagonal q:
 * the exact posterior's covariance is not diagonal, so even shift 0, scale 1 is not exact).
 */
function linearGaussianLogWeight(q: 'exact' | { shift: number; scale: number }) {
  const n = items.length
  const x = tf.tensor2d(items)
  const posts = items.map(exactPosterior)
  return (seed: number): tf.Tensor1D =>
    tf.tidy(() => {
      const eps = tf.randomNormal([n, 2], 0, 1, 'float32', tfSeed(seed)) as tf.Tensor2D
      let z: tf.Tensor2D
      let logQ: tf.Tensor1D
      if (q === 'exact') {
        // z = m + L eps with L the Cholesky factor of S: q is the posterior itself.
        const L = posts.map(({ cov }) => {
          const l00 = Math.sqrt(cov[0][0])
          const l10 = cov[1][0] / l00
          return [l00, l10, Math.sqrt(cov[1][1] - l10 * l10)]
        })
        const e = eps.arraySync() as number[][]
        const zs = posts.map(({ mean }, i) => [mean[0] + L[i][0] * e[i][0], mean[1] + L[i][1] * e[i][0] + L[i][2] * e[i][1]])
        z = tf.tensor2d(zs)
        // log N(z; m, S) = -log 2pi - log det L - |eps|^2 / 2
        logQ = tf.tensor1d(zs.map((_, i) => -Math.log(2 * Math.PI) - Math.log(L[i][0] * L[i][2]) - 0.5 * (e[i][0] ** 2 + e[i][1] ** 2)))
      } else {
        const mu = tf.tensor2d(posts.map(({ mean }) => [mean[0] + q.shift, mean[1] - q.shift]))
        const logvar = tf.tensor2d(posts.map(({ cov }) => [Math.log(cov[0][0] * q.scale ** 2), Math.log(cov[1][1] * q.scale ** 2)]))
        z = mu.add(logvar.mul(0.5).exp().mul(eps)) as tf.Tensor2D
        logQ = logNormalDiagonal(z, mu, logvar)
      }
      const mean = z.matMul(tf.tensor2d(W).transpose()).add(tf.tensor1d(b)) as tf.Tensor2D
      const logLik = logNormalDiagonal(x, mean, tf.fill(mean.shape, Math.log(s2)) as tf.Tensor2D)
      const logPrior = logNormalDiagonal(z, tf.zerosLike(z), tf.zerosLike(z))
      return logLik.add(logPrior).sub(logQ) as tf.Tensor1D
    })
}

const meanOf = (values: ArrayLike<number>) => Array.from(values).reduce((s, v) => s + v, 0) / values.length
const exact = meanOf(items.map(exactLogLikelihood))

describe('the importance-weighted bound on a linear Gaussian model (log p(x) in closed form)', () => {
  it('equals log p(x) for every K when q is the exact posterior', async () => {
    const weight = linearGaussianLogWeight('exact')
    for (const k of [1, 5]) {
      const bound = await importanceWeightedLogLikelihoods(weight, k, 3)
      bound.forEach((v, i) => expect(v).toBeCloseTo(exactLogLikelihood(items[i]), 3))
    }
  })

  it('stays below log p(x), tightens as K grows and approaches it', async () => {
    const weight = linearGaussianLogWeight({ shift: 0.4, scale: 1.6 })
    const byK: Record<number, number> = {}
    for (const k of [1, 10, 100, 1000]) byK[k] = meanOf(await importanceWeightedLogLikelihoods(weight, k, 7))
    expect(byK[1]).toBeLessThan(byK[10])
    expect(byK[10]).toBeLessThan(byK[100])
    expect(byK[100]).toBeLessThan(byK[1000] + 1e-3)
    expect(byK[1000]).toBeLessThan(exact + 0.01)
    // The gap to log p(x) shrinks: at K = 1000 it is under a tenth of the ELBO's (K = 1).
    expect(exact - byK[1000]).toBeLessThan(0.1 * (exact - byK[1]))
    expect(exact - byK[1]).toBeGreaterThan(0.2)
  }, 120_000)
})

describe("each model's importance weights", () => {
  const toy = generateShapes({ count: 48, size: 16, seed: 3, heldOutFraction: 0.25 })
  const data = trainingData(toy)
  const families: ModelFamily[] = ['vae', 'srvae', 'cdvae']

  for (const family of families) {
    it(`${family}: average to the ELBO (closed-form KL), and the K-sample bound is above it`, async () => {
      const model = createModel(
        defaultModelConfig(family, data.shape, toy.classNames.length, {
          seed: 5,
          latentDims: family === 'srvae' ? { u: 2, z: 3 } : family === 'cdvae' ? { z_l: 2, z_u: 2 } : { z: 3 }
        })
      )
      const batch = makeBatch(data, data.trainIndices.subarray(0, 4))
      const draws = 300
      const weights: number[] = []
      const elbos: number[] = []
      for (let s = 1; s <= draws; s++) {
        weights.push(meanOf(tf.tidy(() => model.logImportanceWeight(batch.x, batch.labels, s).dataSync())))
        elbos.push(-tf.tidy(() => model.loss(batch.x, batch.labels, s + 10_000).total.dataSync()[0]))
      }
      const spread = (v: number[]) => Math.sqrt(meanOf(v.map((x) => (x - meanOf(v)) ** 2)) / v.length)
      // The ELBO's KL is exact and its reconstruction sampled; the weights sample both: same mean.
      expect(Math.abs(meanOf(weights) - meanOf(elbos))).toBeLessThan(4 * Math.hypot(spread(weights), spread(elbos)) + 1e-3)
      const bound = await importanceWeightedBound(model, data, data.trainIndices.subarray(0, 4), { samples: 50, seed: 3 })
      expect(bound.items).toBe(4)
      expect(bound.negLogLikelihood).toBeLessThan(-meanOf(elbos))
      expect(bound.standardError).toBeGreaterThan(0)
      tf.dispose([batch.x, batch.labels ?? []])
      model.dispose()
    }, 120_000)
  }
})
