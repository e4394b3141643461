// Data out (electron/engine/exports.ts): each format read back. NPY by a parser written here from
// numpy's format description (and by numpy itself where python3 has it), CSV and TSV row and column
// counts and values, the projector's sprite by its size and its tiles' pixels, its config by the
// fields the Embedding Projector reads; the model's networks loaded by tfjs-layers and called.
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tf from '@tensorflow/tfjs'
import sharp from 'sharp'
import { describe, expect, it } from 'vitest'
import { npyBytes, spriteImage, writeExports } from '../../../electron/engine/exports'
import { generateShapes } from '../../../electron/engine/datasets/shapes'
import { createModel, defaultModelConfig } from '../../../models/index'

/** Parses an .npy file of float32 (or, with `type` '<i4', int32) values: its shape and values. */
function parseNpy(bytes: Uint8Array, type: '<f4' | '<i4' = '<f4'): { shape: number[]; values: Float32Array | Int32Array } {
  expect(Array.from(bytes.subarray(0, 6))).toEqual([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59])
  expect(Array.from(bytes.subarray(6, 8))).toEqual([1, 0])
  const headerLength = bytes[8] + bytes[9] * 256
  const header = Buffer.from(bytes.subarray(10, 10 + headerLength)).toString('latin1')
  // numpy: the whole preamble is a multiple of 64 bytes, the header ends with a newline.
  expect((10 + headerLength) % 64).toBe(0)
  expect(header.endsWith('\n')).toBe(true)
  expect(header).toContain(`'descr': '${type}'`)
  expect(header).toContain("'fortran_order': False")
  const shape = (/'shape': \(([^)]*)\)/.exec(header)?.[1] ?? '')
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean)
    .map(Number)
  const body = bytes.slice(10 + headerLength)
  return {
    shape,
    values:
      type === '<i4' ? new Int32Array(body.buffer, body.byteOffset, body.byteLength / 4) : new Float32Array(body.buffer, body.byteOffset, body.byteLength / 4)
  }
}

const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0

describe('npyBytes', () => {
  it('writes numpy 1.0 files: magic, padded header, shape, little-endian float32', () => {
    const values = Float32Array.from({ length: 12 }, (_, i) => i * 0.5 - 2)
    const parsed = parseNpy(npyBytes(values, [4, 3]))
    expect(parsed.shape).toEqual([4, 3])
    expect(Array.from(parsed.values)).toEqual(Array.from(values))
    expect(parseNpy(npyBytes(Float32Array.from([1, 2]), [2])).shape).toEqual([2])
    expect(() => npyBytes(values, [5, 3])).toThrow(/holds 15 values, not 12/)
  })

  it.skipIf(!hasNumpy)('is read by numpy itself (python3 with numpy here)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cartographer-npy-'))
    const values = Float32Array.from({ length: 6 }, (_, i) => i / 3)
    const file = join(dir, 'a.npy')
    await (await import('node:fs/promises')).writeFile(file, npyBytes(values, [2, 3]))
    const result = spawnSync(
      'python3',
      ['-c', `import numpy as np; a = np.load(${JSON.stringify(file)}); print(a.shape, a.dtype, ' '.join(repr(float(v)) for v in a.ravel()))`],
      { encoding: 'utf8' }
    )
    const [shape, dtype, ...numbers] = result.stdout.trim().replace('(2, 3)', '(2,3)').split(' ')
    expect([shape, dtype]).toEqual(['(2,3)', 'float32'])
    expect(numbers.map(Number)).toEqual(Array.from(values))
  })
})

describe('writeExports', () => {
  const dataset = generateShapes({ count: 30, size: 12, seed: 4 })
  const n = dataset.split.length
  const z = Float32Array.from({ length: n * 3 }, (_, i) => Math.sin(i))
  const u = Float32Array.from({ length: n * 2 }, (_, i) => Math.cos(i))
  const map = Float32Array.from({ length: n * 2 }, (_, i) => i)

  it("writes a selection: its indices, and its items' rows of every latent space and map, in its order", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cartographer-export-selection-'))
    const items = Int32Array.from([17, 3, 29])
    const input = { dataset, latents: new Map([['z', { dim: 3, values: z }]]), maps: new Map([['z', { components: 2, values: map }]]), items }
    const files = await writeExports(dir, input, ['npy', 'csv'])
    expect(files.sort()).toEqual(['indices.npy', 'labels.npy', 'latents-z.csv', 'latents-z.npy', 'map-z.csv', 'map-z.npy'])
    const indices = parseNpy(new Uint8Array(await readFile(join(dir, 'indices.npy'))), '<i4')
    expect([indices.shape, Array.from(indices.values)]).toEqual([[3], [17, 3, 29]])
    const latents = parseNpy(new Uint8Array(await readFile(join(dir, 'latents-z.npy'))))
    expect(latents.shape).toEqual([3, 3])
    expect(Array.from(latents.values)).toEqual([...z.subarray(51, 54), ...z.subarray(9, 12), ...z.subarray(87, 90)])
    expect(Array.from(parseNpy(new Uint8Array(await readFile(join(dir, 'map-z.npy')))).values)).toEqual([34, 35, 6, 7, 58, 59])
    expect(Array.from(parseNpy(new Uint8Array(await readFile(join(dir, 'labels.npy')))).values)).toEqual([17, 3, 29].map((i) => dataset.labels![i]))
    const csv = (await readFile(join(dir, 'latents-z.csv'), 'utf8')).trimEnd().split('\n')
    expect(csv).toHaveLength(4)
    expect(csv.slice(1).map((line) => line.split(',')[0])).toEqual(['17', '3', '29'])
    expect(csv[2].split(',')[1]).toBe(dataset.itemNames[3])
    expect(Number(csv[3].split(',').at(-1))).toBeCloseTo(z[89], 6)
    await expect(writeExports(dir, input, ['projector'])).rejects.toThrow(/a selection exports as NPY and CSV, not projector/)
    await expect(writeExports(dir, { ...input, items: Int32Array.from([30]) }, ['npy'])).rejects.toThrow(/no item 30; the dataset has 30/)
  })

  it('writes NPY, CSV and a projector folder that read back to the same items', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cartographer-export-'))
    const files = await writeExports(
      dir,
      {
        dataset,
        latents: new Map([
          ['z', { dim: 3, values: z }],
          ['u', { dim: 2, values: u }]
        ]),
        maps: new Map([['z', { components: 2, values: map }]])
      },
      ['npy', 'csv', 'projector']
    )
    expect(files.sort()).toEqual(
      [
        'labels.npy',
        'latents-u.csv',
        'latents-u.npy',
        'latents-z.csv',
        'latents-z.npy',
        'map-z.csv',
        'map-z.npy',
        'projector/metadata.tsv',
        'projector/projector_config.pbtxt',
        'projector/sprite.png',
        'projector/tensors-u.tsv',
        'projector/tensors-z.tsv'
      ].sort()
    )
    const npy = parseNpy(new Uint8Array(await readFile(join(dir, 'latents-z.npy'))))
    expect(npy.shape).toEqual([n, 3])
    expect(Array.from(npy.values)).toEqual(Array.from(z))
    expect(parseNpy(new Uint8Array(await readFile(join(dir, 'map-z.npy')))).shape).toEqual([n, 2])
    expect(Array.from(parseNpy(new Uint8Array(await readFile(join(dir, 'labels.npy')))).values)).toEqual(Array.from(dataset.labels!))

    const csv = (await readFile(join(dir, 'latents-z.csv'), 'utf8')).trimEnd().split('\n')
    expect(csv).toHaveLength(n + 1)
    expect(csv[0]).toBe('index,file,class,split,z_0,z_1,z_2')
    const row7 = csv[8].split(',')
    expect(row7.slice(0, 4)).toEqual(['7', dataset.itemNames[7], dataset.classNames[dataset.labels![7]], dataset.split[7] === 1 ? 'heldout' : 'train'])
    expect(row7.slice(4).map(Number)).toEqual(Array.from(z.subarray(21, 24)))

    const tensors = (await readFile(join(dir, 'projector', 'tensors-z.tsv'), 'utf8')).trimEnd().split('\n')
    expect(tensors).toHaveLength(n)
    expect(tensors[5].split('\t').map(Number)).toEqual(Array.from(z.subarray(15, 18)))
    const metadata = (await readFile(join(dir, 'projector', 'metadata.tsv'), 'utf8')).trimEnd().split('\n')
    expect(metadata).toHaveLength(n + 1)
    expect(metadata[0]).toBe('index\tclass\tfile\tsplit')
    expect(metadata[3].split('\t')[1]).toBe(dataset.classNames[dataset.labels![2]])

    const config = await readFile(join(dir, 'projector', 'projector_config.pbtxt'), 'utf8')
    expect(config.match(/embeddings \{/g)).toHaveLength(2)
    expect(config).toContain('tensor_path: "tensors-z.tsv"')
    expect(config).toContain('metadata_path: "metadata.tsv"')
    expect(config).toContain('single_image_dim: 12')
    // 30 items: 6 columns of 12-px tiles, 5 rows.
    const sprite = await sharp(join(dir, 'projector', 'sprite.png')).metadata()
    expect([sprite.width, sprite.height]).toEqual([72, 60])
  })

  it('keeps the sprite within its size limit, each tile the box average of its image', async () => {
    const limit = 36
    const { png, tileWidth, tileHeight, columns } = await spriteImage(dataset, limit)
    // 6 columns x 12 px = 72 > 36: tiles of 6 px, each the mean of 2x2 source pixels.
    expect([columns, tileWidth, tileHeight]).toEqual([6, 6, 6])
    const { data, info } = await sharp(Buffer.from(png)).raw().toBuffer({ resolveWithObject: true })
    expect(info.width).toBeLessThanOrEqual(limit)
    const item = 8
    const k = 12 * 12
    const source = dataset.pixels.subarray(item * k, (item + 1) * k)
    const ox = (item % columns) * tileWidth
    const oy = Math.floor(item / columns) * tileHeight
    for (const [tx, ty] of [
      [0, 0],
      [3, 2],
      [5, 5]
    ]) {
      const mean =
        (source[2 * ty * 12 + 2 * tx] + source[2 * ty * 12 + 2 * tx + 1] + source[(2 * ty + 1) * 12 + 2 * tx] + source[(2 * ty + 1) * 12 + 2 * tx + 1]) / 4
      expect(Math.abs(data[((oy + ty) * info.width + ox + tx) * info.channels] - mean)).toBeLessThanOrEqual(0.5)
    }
  })
})

describe('the model format', () => {
  // Each family's networks written as LayersModels, loaded back by tfjs-layers alone (no code of
  // this project), and called: their outputs must be the app's own encodings and decodings.
  const loadNetwork = async (dir: string, name: string): Promise<tf.LayersModel> => {
    const json = JSON.parse(await readFile(join(dir, 'model', name, 'model.json'), 'utf8'))
    expect(json.format).toBe('layers-model')
    expect(json.weightsManifest[0].paths).toEqual(['weights.bin'])
    const weights = await readFile(join(dir, 'model', name, 'weights.bin'))
    return tf.loadLayersModel(
      tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0].weights, weightData: new Uint8Array(weights).buffer })
    )
  }
  const close = (a: tf.Tensor, b: tf.Tensor) => {
    expect(a.shape).toEqual(b.shape)
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBeLessThan(1e-4)
  }

  // 16 px: the convolutional trunk and decoder; 8 px: the MLP ones.
  for (const side of [16, 8]) {
    it(`loads and calls every family's networks as the app does (${side} px)`, async () => {
      await tf.setBackend('cpu')
      const image = { height: side, width: side, channels: 1 }
      const x = tf.randomUniform([3, side, side, 1], 0, 1, 'float32', 5) as tf.Tensor4D
      const dataset = generateShapes({ count: 6, size: side, seed: 1 })
      for (const family of ['vae', 'cdvae', 'srvae'] as const) {
        const config = defaultModelConfig(family, image, 3, { seed: 2, conditionalPrior: family !== 'cdvae' })
        const model = createModel(config)
        const dir = await mkdtemp(join(tmpdir(), `lc-model-${family}-`))
        const latents = new Map(model.spaces.map((s) => [s.name, { dim: s.dim, values: new Float32Array(6 * s.dim) }]))
        const files = await writeExports(dir, { dataset, latents, model: { model, runJson: JSON.stringify({ config }) } }, ['model'])
        expect(files).toContain(join('model', 'run.json'))
        expect(files).toContain(join('model', 'README.md'))
        const priors = JSON.parse(await readFile(join(dir, 'model', 'priors.json'), 'utf8'))
        const space = model.conditionalSpace as string
        expect(priors[space].means).toHaveLength(3)
        const posteriors = model.posteriors(x)
        if (family === 'srvae') {
          const srvae = model as unknown as {
            downscale(x: tf.Tensor4D): tf.Tensor2D
            priorZ(y: tf.Tensor2D, u: tf.Tensor2D): { mu: tf.Tensor2D; logvar: tf.Tensor2D }
          }
          const y = srvae.downscale(x)
          const [uMean, uLogvar] = (await loadNetwork(dir, 'encoder_u')).predict(y) as tf.Tensor[]
          close(uMean, posteriors.u.mu)
          close(uLogvar, posteriors.u.logvar)
          const [zMean] = (await loadNetwork(dir, 'encoder_z')).predict(x) as tf.Tensor[]
          close(zMean, posteriors.z.mu)
          const prior = (await loadNetwork(dir, 'prior_z')).predict([y, posteriors.u.mu]) as tf.Tensor2D
          const expected = srvae.priorZ(y, posteriors.u.mu)
          close(prior, tf.concat([expected.mu, expected.logvar], 1))
          close((await loadNetwork(dir, 'decoder_x')).predict([y, posteriors.z.mu]) as tf.Tensor, model.decode('z', posteriors.z.mu, { y }).x)
          close((await loadNetwork(dir, 'decoder_y')).predict(posteriors.u.mu) as tf.Tensor, model.reconstruct(x).y_decoded)
        } else if (family === 'cdvae') {
          const outputs = (await loadNetwork(dir, 'encoder')).predict(x) as tf.Tensor[]
          ;[posteriors.z_l.mu, posteriors.z_l.logvar, posteriors.z_u.mu, posteriors.z_u.logvar].forEach((t, i) => close(outputs[i], t))
          close((await loadNetwork(dir, 'decoder')).predict([posteriors.z_l.mu, posteriors.z_u.mu]) as tf.Tensor, model.reconstruct(x).x)
        } else {
          const [mean, logvar] = (await loadNetwork(dir, 'encoder')).predict(x) as tf.Tensor[]
          close(mean, posteriors.z.mu)
          close(logvar, posteriors.z.logvar)
          close((await loadNetwork(dir, 'decoder')).predict(posteriors.z.mu) as tf.Tensor, model.reconstruct(x).x)
        }
        model.dispose()
      }
    })
  }
})
