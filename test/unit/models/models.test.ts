// The models' maths against models.md, computed independently here in float64 JavaScript from
// the networks' own outputs, and the KL forms against each other and Monte-Carlo estimates.
import * as tf from '@tensorflow/tfjs'
import { beforeAll, describe, expect, it } from 'vitest'
import {
  bernoulliNegLogLik,
  gaussianNegLogLikTerms,
  klDiagonalGaussiansPerDim,
  klStandardNormalPerDim,
  logNormalDiagonal,
  sumPerItem
} from '../../../models/distributions'
import { createModel, defaultModelConfig, type ModelConfig, type VaeFamilyModel } from '../../../models/index'
import type { Srvae } from '../../../models/srvae'
import type { Cdvae } from '../../../models/cdvae'
import { tfSeed } from '../../../models/random'

beforeAll(async () => {
  await tf.setBackend('cpu')
})

const rows = (t: tf.Tensor): number[][] => t.arraySync() as number[][]
const flat = (t: tf.Tensor): number[] => Array.from(t.dataSync())
const LOG2PI = Math.log(2 * Math.PI)

function klNormals(m1: number[], lv1: number[], m2: number[], lv2: number[]): number {
  let sum = 0
  for (let i = 0; i < m1.length; i++) {
    const s1 = Math.exp(lv1[i])
    const s2 = Math.exp(lv2[i])
    sum += Math.log(s2 / s1) + (s1 + (m1[i] - m2[i]) ** 2) / s2 - 1
  }
  return sum / 2
}

function bce(x: number[], p: number[]): number {
  let sum = 0
  for (let i = 0; i < x.length; i++) {
    const q = Math.min(Math.max(p[i], 1e-12), 1 - 1e-12)
    sum -= x[i] * Math.log(q) + (1 - x[i]) * Math.log(1 - q)
  }
  return sum
}

function gaussianNll(v: number[], mean: number[], logGamma: number): number {
  const k = v.length
  let sse = 0
  for (let i = 0; i < k; i++) sse += (v[i] - mean[i]) ** 2
  return k * logGamma + sse / (2 * Math.exp(2 * logGamma)) + (k / 2) * LOG2PI
}

const reparam = (mu: number[], lv: number[], eps: number[]) => mu.map((m, i) => m + Math.exp(lv[i] / 2) * eps[i])

describe('Gaussian KL divergences', () => {
  const mu1 = tf.tensor2d([
    [0.3, -1.2, 2.0],
    [0, 0, 0]
  ])
  const lv1 = tf.tensor2d([
    [-0.5, 0.7, -2.0],
    [0, 0, 0]
  ])

  it('the closed form to N(0, I) is the special case m2 = 0, s2 = 1 of the general one', () => {
    const special = flat(sumPerItem(klStandardNormalPerDim(mu1, lv1)))
    const general = flat(sumPerItem(klDiagonalGaussiansPerDim(mu1, lv1, tf.zerosLike(mu1), tf.zerosLike(lv1))))
    expect(special[0]).toBeCloseTo(general[0], 5)
    expect(special[1]).toBeCloseTo(0, 6)
    expect(special[0]).toBeCloseTo(klNormals([0.3, -1.2, 2.0], [-0.5, 0.7, -2.0], [0, 0, 0], [0, 0, 0]), 4)
  })

  it('both agree with a Monte-Carlo estimate E_q[log q(z) - log p(z)]', () => {
    const mu2 = tf.tensor2d([[1.0, 0.5, -0.5]])
    const lv2 = tf.tensor2d([[0.4, -0.3, 1.0]])
    const m1 = mu1.slice([0, 0], [1, 3]) as tf.Tensor2D
    const l1 = lv1.slice([0, 0], [1, 3]) as tf.Tensor2D
    const n = 200_000
    const z = m1.add(
      l1
        .mul(0.5)
        .exp()
        .mul(tf.randomNormal([n, 3], 0, 1, 'float32', 42))
    ) as tf.Tensor2D
    const logQ = logNormalDiagonal(z, m1.tile([n, 1]) as tf.Tensor2D, l1.tile([n, 1]) as tf.Tensor2D)
    const monteCarloGeneral = flat(logQ.sub(logNormalDiagonal(z, mu2.tile([n, 1]) as tf.Tensor2D, lv2.tile([n, 1]) as tf.Tensor2D)))
    const monteCarloStandard = flat(logQ.sub(logNormalDiagonal(z, tf.zeros([n, 3]), tf.zeros([n, 3]))))
    const meanAndError = (values: number[]) => {
      const mean = values.reduce((a, b) => a + b, 0) / values.length
      const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1)
      return { mean, error: Math.sqrt(variance / values.length) }
    }
    const general = meanAndError(monteCarloGeneral)
    const standard = meanAndError(monteCarloStandard)
    const closedGeneral = flat(sumPerItem(klDiagonalGaussiansPerDim(m1, l1, mu2, lv2)))[0]
    const closedStandard = flat(sumPerItem(klStandardNormalPerDim(m1, l1)))[0]
    expect(Math.abs(general.mean - closedGeneral)).toBeLessThan(4 * general.error + 1e-3)
    expect(Math.abs(standard.mean - closedStandard)).toBeLessThan(4 * standard.error + 1e-3)
    expect(closedGeneral).toBeGreaterThan(0)
  })
})

describe('likelihoods', () => {
  it('Bernoulli from logits equals binary cross-entropy from probabilities, and is stable for large logits', () => {
    const logits = tf.tensor2d([[-3, 0.5, 8, -40, 40]])
    const x = tf.tensor2d([[0, 1, 1, 0, 0]])
    const p = flat(tf.sigmoid(logits))
    const got = flat(bernoulliNegLogLik(logits, x))[0]
    // The last pixel has logit 40 but x = 0: -log(1 - sigmoid(40)) = 40 (probabilities would give Inf).
    const expected = bce([0, 1, 1, 0], p.slice(0, 4)) + 40
    expect(got).toBeCloseTo(expected, 3)
  })

  it('the calibrated Gaussian is k log gamma + ||v - v_hat||^2 / (2 gamma^2) + k/2 log 2pi', () => {
    const mean = tf.tensor2d([[0.1, 0.5, 0.9, 0.2]])
    const v = tf.tensor2d([[0.0, 0.7, 1.0, 0.2]])
    const { squaredError, logGammaTerm } = gaussianNegLogLikTerms(mean, v, tf.scalar(-1.3))
    const got = flat(squaredError)[0] + flat(logGammaTerm)[0]
    expect(got).toBeCloseTo(gaussianNll([0, 0.7, 1, 0.2], [0.1, 0.5, 0.9, 0.2], -1.3), 4)
    expect(flat(logGammaTerm)[0]).toBeCloseTo(4 * -1.3, 5)
  })
})

// Tiny fixed networks: 8x8 images take the MLP path, 16x16 the convolutional one.
const image8 = { height: 8, width: 8, channels: 1 }
const batchOf = (n: number, shape = image8, seed = 3) => tf.randomUniform([n, shape.height, shape.width, shape.channels], 0, 1, 'float32', seed) as tf.Tensor4D
const paramValue = (model: VaeFamilyModel, suffix: string) => {
  const entry = model.parameters.entries().find(([name]) => name === suffix)
  if (!entry) throw new Error(`no parameter ${suffix}`)
  return flat(entry[1])
}

describe('each model loss equals the formula of models.md', () => {
  it('VAE, Bernoulli: BCE(x, decode(mu + s*eps)) + KL(q || N(0, I))', () => {
    const model = createModel(defaultModelConfig('vae', image8, 0, { latentDims: { z: 3 }, seed: 1 }))
    const x = batchOf(4)
    const seed = 77
    const { total, terms } = model.loss(x, null, seed)
    const { mu, logvar } = model.posteriors(x).z
    const eps = rows(tf.randomNormal(mu.shape, 0, 1, 'float32', tfSeed(seed)))
    const z = rows(mu).map((m, i) => reparam(m, rows(logvar)[i], eps[i]))
    const probs = rows(model.decode('z', tf.tensor2d(z)).x.reshape([4, 64]))
    const xs = rows(x.reshape([4, 64]))
    let recon = 0
    let kl = 0
    for (let i = 0; i < 4; i++) {
      recon += bce(xs[i], probs[i]) / 4
      kl += klNormals(rows(mu)[i], rows(logvar)[i], [0, 0, 0], [0, 0, 0]) / 4
    }
    expect(flat(terms.reconstruction_x)[0]).toBeCloseTo(recon, 2)
    expect(flat(terms.kl_z)[0]).toBeCloseTo(kl, 3)
    expect(flat(total)[0]).toBeCloseTo(recon + kl, 2)
  })

  it('SRVAE, Gaussian: both calibrated likelihoods, KL(q(u|y) || N(0,I)) and KL(q(z|x) || p(z|y,u))', () => {
    const model = createModel(defaultModelConfig('srvae', image8, 0, { likelihood: 'gaussian', latentDims: { u: 2, z: 3 }, seed: 2 })) as Srvae
    const n = 3
    const x = batchOf(n)
    const seed = 5
    const { total, terms } = model.loss(x, null, seed)
    const xs = rows(x.reshape([n, 64]))
    // y = 2x2 average pooling, computed by hand.
    const ys = xs.map((px) => {
      const y: number[] = []
      for (let r = 0; r < 4; r++)
        for (let c = 0; c < 4; c++)
          y.push((px[2 * r * 8 + 2 * c] + px[2 * r * 8 + 2 * c + 1] + px[(2 * r + 1) * 8 + 2 * c] + px[(2 * r + 1) * 8 + 2 * c + 1]) / 4)
      return y
    })
    const post = model.posteriors(x)
    const epsU = rows(tf.randomNormal([n, 2], 0, 1, 'float32', tfSeed(seed * 2)))
    const epsZ = rows(tf.randomNormal([n, 3], 0, 1, 'float32', tfSeed(seed * 2 + 1)))
    const u = rows(post.u.mu).map((m, i) => reparam(m, rows(post.u.logvar)[i], epsU[i]))
    const z = rows(post.z.mu).map((m, i) => reparam(m, rows(post.z.logvar)[i], epsZ[i]))
    const yTensor = tf.tensor2d(ys)
    const prior = model.priorZ(yTensor, tf.tensor2d(u))
    const yHat = rows(model.decode('u', tf.tensor2d(u)).y.reshape([n, 16]))
    const xHat = rows(model.decode('z', tf.tensor2d(z), { y: yTensor }).x.reshape([n, 64]))
    const logGamma1 = paramValue(model, 'log_gamma_x')[0]
    const logGamma2 = paramValue(model, 'log_gamma_y')[0]
    let expected = 0
    let klZ = 0
    for (let i = 0; i < n; i++) {
      klZ += klNormals(rows(post.z.mu)[i], rows(post.z.logvar)[i], rows(prior.mu)[i], rows(prior.logvar)[i]) / n
      expected +=
        (gaussianNll(xs[i], xHat[i], logGamma1) +
          gaussianNll(ys[i], yHat[i], logGamma2) +
          klNormals(rows(post.u.mu)[i], rows(post.u.logvar)[i], [0, 0], [0, 0])) /
        n
    }
    expected += klZ
    expect(flat(terms.kl_z)[0]).toBeCloseTo(klZ, 3)
    expect(flat(terms.log_gamma_y)[0]).toBeCloseTo(16 * logGamma2, 4)
    expect(flat(total)[0]).toBeCloseTo(expected, 2)
  })

  it('CDVAE: reconstruction + KL(q(z_l|x) || p(z_l|c)) + KL(q(z_u|x) || N(0, I))', () => {
    const model = createModel(defaultModelConfig('cdvae', image8, 3, { latentDims: { z_l: 2, z_u: 2 }, seed: 3 })) as Cdvae
    const n = 4
    const x = batchOf(n)
    const labels = [0, 2, 1, 2]
    const seed = 9
    const { total, terms } = model.loss(x, tf.tensor1d(labels, 'int32'), seed)
    const post = model.posteriors(x)
    const epsL = rows(tf.randomNormal([n, 2], 0, 1, 'float32', tfSeed(seed * 2)))
    const epsU = rows(tf.randomNormal([n, 2], 0, 1, 'float32', tfSeed(seed * 2 + 1)))
    const zl = rows(post.z_l.mu).map((m, i) => reparam(m, rows(post.z_l.logvar)[i], epsL[i]))
    const zu = rows(post.z_u.mu).map((m, i) => reparam(m, rows(post.z_u.logvar)[i], epsU[i]))
    const probs = rows(model.decode('z_l', tf.tensor2d(zl), { z_u: tf.tensor2d(zu) }).x.reshape([n, 64]))
    const means = rows(model.prior.means)
    const logvars = rows(model.prior.logvars)
    const xs = rows(x.reshape([n, 64]))
    let klL = 0
    let expected = 0
    for (let i = 0; i < n; i++) {
      const c = labels[i]
      klL += klNormals(rows(post.z_l.mu)[i], rows(post.z_l.logvar)[i], means[c], logvars[c]) / n
      expected += (bce(xs[i], probs[i]) + klNormals(rows(post.z_u.mu)[i], rows(post.z_u.logvar)[i], [0, 0], [0, 0])) / n
    }
    expected += klL
    expect(flat(terms.kl_z_l)[0]).toBeCloseTo(klL, 3)
    expect(flat(total)[0]).toBeCloseTo(expected, 2)
  })

  it('the VAE with a class-conditional prior uses KL to N(mu_c, s2_c)', () => {
    const model = createModel(defaultModelConfig('vae', image8, 2, { latentDims: { z: 2 }, conditionalPrior: true, seed: 4 }))
    expect(model.conditionalSpace).toBe('z')
    const x = batchOf(2)
    const { terms } = model.loss(x, tf.tensor1d([1, 0], 'int32'), 1)
    const post = model.posteriors(x).z
    const means = rows(model.parameters.entries().find(([k]) => k === 'prior/z/class_means')![1])
    const expected =
      (klNormals(rows(post.mu)[0], rows(post.logvar)[0], means[1], [0, 0]) + klNormals(rows(post.mu)[1], rows(post.logvar)[1], means[0], [0, 0])) / 2
    expect(flat(terms.kl_z)[0]).toBeCloseTo(expected, 3)
  })

  it('a convolutional VAE (16x16 RGB) has the reference architecture and a finite loss', () => {
    const shape = { height: 16, width: 16, channels: 3 }
    const model = createModel(defaultModelConfig('vae', shape, 0, { latentDims: { z: 4 } }))
    const names = model.parameters.entries().map(([k]) => k)
    expect(names).toContain('encoder/conv0/kernel')
    expect(names).toContain('decoder/up1/kernel')
    const { total } = model.loss(batchOf(2, shape), null, 0)
    expect(Number.isFinite(flat(total)[0])).toBe(true)
    expect(model.reconstruct(batchOf(2, shape)).x.shape).toEqual([2, 16, 16, 3])
  })
})

describe('decoding from each space fills the others as models.md says', () => {
  const config: ModelConfig = defaultModelConfig('srvae', image8, 0, { latentDims: { u: 2, z: 3 }, seed: 6 })
  const model = createModel(config) as Srvae
  const x = batchOf(2)

  it('from u: y = y_hat(u), z = mean of p(z|y,u), then x', () => {
    const u = tf.tensor2d([
      [0.5, -1],
      [1.5, 0.2]
    ])
    const out = model.decode('u', u)
    const y = out.y.reshape([2, 16]) as tf.Tensor2D
    const viaZ = model.decode('z', model.priorZ(y, u).mu, { y })
    expect(flat(out.x)).toEqual(flat(viaZ.x))
  })

  it('from y: u = mean of q(u|y), z = mean of p(z|y,u), then x', () => {
    const { y, u } = model.encode(x)
    const out = model.decode('y', y)
    const viaZ = model.decode('z', model.priorZ(y, u).mu, { y })
    const a = flat(out.x)
    const b = flat(viaZ.x)
    a.forEach((v, i) => expect(v).toBeCloseTo(b[i], 5))
  })

  it('from z: needs the y of the same item, and says so without it', () => {
    const { z, y } = model.encode(x)
    expect(() => model.decode('z', z)).toThrow(/needs the y/)
    expect(flat(model.decode('z', z, { y }).x)).toEqual(flat(model.reconstruct(x).x))
  })

  it('the CDVAE decodes z_l with the z_u given as context', () => {
    const cd = createModel(defaultModelConfig('cdvae', image8, 2, { latentDims: { z_l: 2, z_u: 2 } }))
    const { z_l, z_u } = cd.encode(x)
    expect(flat(cd.decode('z_l', z_l, { z_u }).x)).toEqual(flat(cd.reconstruct(x).x))
    expect(flat(cd.decode('z_u', z_u, { z_l }).x)).toEqual(flat(cd.reconstruct(x).x))
  })
})

describe('CDVAE conditional generation', () => {
  it('samples z_l from p(z_l | c): mu_c + s_c * eps, decoded with the shared z_u', () => {
    const model = createModel(defaultModelConfig('cdvae', image8, 3, { latentDims: { z_l: 2, z_u: 2 } })) as Cdvae
    model.prior.means.assign(
      tf.tensor2d([
        [-3, 0],
        [0, 3],
        [3, 3]
      ])
    )
    model.prior.logvars.assign(
      tf.tensor2d([
        [0, 0],
        [-2, -2],
        [1, 1]
      ])
    )
    // Monte Carlo: draws for class 2 have mean (3, 3) and variance e^1.
    const eps = tf.randomNormal([20000, 2], 0, 1, 'float32', 1) as tf.Tensor2D
    const draws = model.prior.sample(2, eps, 1)
    const moments = tf.moments(draws, 0)
    flat(moments.mean).forEach((m) => expect(m).toBeCloseTo(3, 1))
    flat(moments.variance).forEach((v) => expect(Math.abs(v - Math.E) / Math.E).toBeLessThan(0.05))
    // The image path: sample(c) decodes exactly (mu_c + s_c eps_l, eps_u).
    const noiseL = tf.randomNormal([4, 2], 0, 1, 'float32', 2) as tf.Tensor2D
    const noiseU = tf.randomNormal([4, 2], 0, 1, 'float32', 3) as tf.Tensor2D
    const sampled = model.sample(4, { classIndex: 1, noise: { z_l: noiseL, z_u: noiseU } })
    const expected = model.decode('z_l', model.prior.sample(1, noiseL, 1), { z_u: noiseU })
    expect(flat(sampled.x)).toEqual(flat(expected.x))
  })
})
