// What was learned, out of the app in the formats people use (issue 13): every latent space as
// NPY (numpy's own format) and CSV, the maps' coordinates likewise, and a folder that TensorBoard's
// Embedding Projector opens as it is (tensors.tsv, metadata.tsv, a sprite, projector_config.pbtxt),
// and the model's networks as TensorFlow.js LayersModels (model.json + weights.bin each).
import { elementAt } from '../../models/arrays'
import * as tf from '@tensorflow/tfjs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import sharp from 'sharp'
import type { ExportFormatName } from '../common/contract'
import type { VaeFamilyModel } from '../../models/index'
import { writeFileAtomic } from './atomic'
import type { ImageDataset } from './datasets/types'

/** The Embedding Projector reads sprites of at most 8192 x 8192 pixels. */
export const SPRITE_LIMIT = 8192

export interface ExportInput {
  dataset: ImageDataset
  /** Posterior means per space, n * dim, item order. */
  latents: Map<string, { dim: number; values: Float32Array }>
  /** Map coordinates per space, n * components, item order (those made so far). */
  maps?: Map<string, { components: number; values: Float32Array }>
  /** The trained model and its run.json text, for the 'model' format. */
  model?: { model: VaeFamilyModel; runJson: string }
  /**
   * Only these items, in this order (a selection made on a map), with their dataset indices kept in
   * the CSVs' index column and written as indices.npy; NPY and CSV only. Default: every item.
   */
  items?: Int32Array
}

/**
 * One network as the files tf.loadLayersModel reads: model.json (topology and weights manifest,
 * format 'layers-model') and weights.bin beside it.
 */
async function layersModelFiles(model: tf.LayersModel): Promise<{ json: string; weights: Uint8Array }> {
  let files: { json: string; weights: Uint8Array } | null = null
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const weightData = artifacts.weightData
      if (!weightData || Array.isArray(weightData)) throw new Error('expected the weights as one buffer')
      const json = {
        format: 'layers-model',
        generatedBy: `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
        convertedBy: 'Latent Cartographer',
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }]
      }
      files = { json: JSON.stringify(json), weights: new Uint8Array(weightData) }
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }
    })
  )
  if (!files) throw new Error('the model was not saved')
  return files
}

/** The class prior's means and log-variances, [class][dimension], under the space it is a prior of. */
async function classPriors(model: VaeFamilyModel): Promise<Record<string, { means: number[][]; logvars: number[][] }>> {
  const prior = model.classPrior()
  if (!prior || !model.conditionalSpace) return {}
  return { [model.conditionalSpace]: { means: (await prior.means.array()) as number[][], logvars: (await prior.logvars.array()) as number[][] } }
}

/** How to load and call the exported networks, written beside them. */
function modelReadme(model: VaeFamilyModel, networks: { name: string; description: string }[]): string {
  const { height, width, channels } = model.config.image
  return [
    `# ${model.config.family.toUpperCase()} exported by Latent Cartographer`,
    '',
    `Images are ${width} x ${height} x ${channels}, values in [0, 1], NHWC. Each folder is a TensorFlow.js LayersModel:`,
    '',
    ...networks.map((n) => `- \`${n.name}/model.json\`: ${n.description}`),
    '',
    'run.json holds the model configuration (latent sizes, likelihood, class names are in the dataset).',
    'priors.json holds each class prior p(. | c) as means and log-variances per class, where the model has one.',
    '',
    '```js',
    "import * as tf from '@tensorflow/tfjs'",
    "// In Node: a file:// handler (tfjs-node) or tf.io.fromMemory on the files' contents; in a browser: an http URL.",
    `const decoder = await tf.loadLayersModel('${networks.find((n) => n.name.startsWith('decoder'))?.name ?? 'decoder'}/model.json')`,
    'const images = decoder.predict(latents) // latents: tf.Tensor2D, or an array of them for several inputs',
    '```',
    ''
  ].join('\n')
}

/**
 * A float32 array as an .npy file (format version 1.0): the magic string, a header dict padded with
 * spaces to a multiple of 64 bytes and ended by a newline, then the little-endian values.
 */
export function npyBytes(values: Float32Array | Int32Array, shape: number[]): Uint8Array {
  const count = shape.reduce((p, d) => p * d, 1)
  if (count !== values.length) throw new Error(`an NPY of shape (${shape.join(', ')}) holds ${count} values, not ${values.length}`)
  const descr = values instanceof Int32Array ? '<i4' : '<f4'
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`
  const preamble = 10 // magic (6) + version (2) + header length (2)
  const padded = dict + ' '.repeat((64 - ((preamble + dict.length + 1) % 64)) % 64) + '\n'
  const out = new Uint8Array(preamble + padded.length + values.byteLength)
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0)
  new DataView(out.buffer).setUint16(8, padded.length, true)
  out.set(Buffer.from(padded, 'latin1'), preamble)
  // A copy: the values may be a view into a larger buffer, and the body is little-endian as the
  // platforms this runs on are.
  const body = values instanceof Int32Array ? new Int32Array(values) : new Float32Array(values)
  out.set(new Uint8Array(body.buffer), preamble + padded.length)
  return out
}

const splitName = (dataset: ImageDataset, i: number) => (dataset.split[i] === 1 ? 'heldout' : 'train')
const className = (dataset: ImageDataset, i: number) => (dataset.labels ? (dataset.classNames[elementAt(dataset.labels, i)] ?? '') : '')

/** A CSV field: quoted when it holds a comma, a quote or a line break. */
function csvField(text: string): string {
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

/** A TSV field for the projector's metadata: tabs and line breaks would split rows. */
const tsvField = (text: string) => text.replace(/[\t\r\n]/g, ' ')

/**
 * index, file, class, split, then one column per dimension (`prefix`0, `prefix`1, ...); one row
 * per item of `items` (dataset indices), whose values are the rows of `values` in that order.
 */
function csvTable(dataset: ImageDataset, values: Float32Array, dim: number, prefix: string, items: Int32Array): string {
  const lines = [['index', 'file', 'class', 'split', ...Array.from({ length: dim }, (_, d) => `${prefix}${d}`)].join(',')]
  items.forEach((i, row) => {
    const fields = [String(i), csvField(dataset.itemNames[i] ?? ''), csvField(className(dataset, i)), splitName(dataset, i)]
    for (let d = 0; d < dim; d++) fields.push(String(values[row * dim + d]))
    lines.push(fields.join(','))
  })
  return lines.join('\n') + '\n'
}

/** The rows `items` of an n x `dim` table, in that order. */
function rowsOf(values: Float32Array, dim: number, items: Int32Array | null): Float32Array {
  if (!items) return values
  const out = new Float32Array(items.length * dim)
  items.forEach((i, row) => out.set(values.subarray(i * dim, (i + 1) * dim), row * dim))
  return out
}

/**
 * Every item's thumbnail in one sprite, row-major, square grid of ceil(sqrt(n)) columns, each tile
 * the image's size or less so that the sprite fits `limit` pixels a side (tiles shrink by box averaging).
 */
export async function spriteImage(
  dataset: ImageDataset,
  limit = SPRITE_LIMIT
): Promise<{ png: Uint8Array; tileWidth: number; tileHeight: number; columns: number }> {
  const n = dataset.split.length
  const { width, height, channels } = dataset
  const columns = Math.ceil(Math.sqrt(n))
  const scale = Math.min(1, limit / (columns * Math.max(width, height)))
  const tileWidth = Math.max(1, Math.floor(width * scale))
  const tileHeight = Math.max(1, Math.floor(height * scale))
  const rows = Math.ceil(n / columns)
  const spriteWidth = columns * tileWidth
  const sprite = new Uint8Array(spriteWidth * rows * tileHeight * channels)
  const k = width * height * channels
  for (let i = 0; i < n; i++) {
    const source = dataset.pixels.subarray(i * k, (i + 1) * k)
    const ox = (i % columns) * tileWidth
    const oy = Math.floor(i / columns) * tileHeight
    for (let ty = 0; ty < tileHeight; ty++) {
      const y0 = Math.floor((ty * height) / tileHeight)
      const y1 = Math.max(y0 + 1, Math.floor(((ty + 1) * height) / tileHeight))
      for (let tx = 0; tx < tileWidth; tx++) {
        const x0 = Math.floor((tx * width) / tileWidth)
        const x1 = Math.max(x0 + 1, Math.floor(((tx + 1) * width) / tileWidth))
        for (let c = 0; c < channels; c++) {
          let sum = 0
          for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) sum += elementAt(source, (y * width + x) * channels + c)
          sprite[((oy + ty) * spriteWidth + ox + tx) * channels + c] = Math.round(sum / ((y1 - y0) * (x1 - x0)))
        }
      }
    }
  }
  const png = await sharp(Buffer.from(sprite.buffer, sprite.byteOffset, sprite.byteLength), {
    raw: { width: spriteWidth, height: rows * tileHeight, channels }
  })
    .png()
    .toBuffer()
  return { png: new Uint8Array(png), tileWidth, tileHeight, columns }
}

/** Writes the chosen formats into `dir` (created); returns the files written, relative to it. */
export async function writeExports(dir: string, input: ExportInput, formats: readonly ExportFormatName[]): Promise<string[]> {
  const { dataset, latents } = input
  const n = dataset.split.length
  const selection = input.items ?? null
  if (selection) {
    const outside = selection.find((i) => i < 0 || i >= n)
    if (outside !== undefined) throw new Error(`there is no item ${outside}; the dataset has ${n}`)
    const whole = formats.filter((f) => f !== 'npy' && f !== 'csv')
    if (whole.length) throw new Error(`a selection exports as NPY and CSV, not ${whole.join(', ')}`)
  }
  const items = selection ?? Int32Array.from({ length: n }, (_, i) => i)
  const m = items.length
  await mkdir(dir, { recursive: true })
  const written: string[] = []
  const write = async (name: string, data: Uint8Array | string) => {
    await writeFileAtomic(join(dir, name), data)
    written.push(name)
  }
  for (const [space, { dim, values }] of latents) {
    if (values.length !== n * dim) throw new Error(`the latents of ${space} hold ${values.length} values, not ${n} items x ${dim}`)
  }
  if (formats.includes('npy')) {
    if (selection) await write('indices.npy', npyBytes(selection, [m]))
    for (const [space, { dim, values }] of latents) await write(`latents-${space}.npy`, npyBytes(rowsOf(values, dim, selection), [m, dim]))
    for (const [space, { components, values }] of input.maps ?? [])
      await write(`map-${space}.npy`, npyBytes(rowsOf(values, components, selection), [m, components]))
    const labels = new Float32Array(m).fill(-1)
    const datasetLabels = dataset.labels
    if (datasetLabels) items.forEach((i, row) => (labels[row] = elementAt(datasetLabels, i)))
    await write('labels.npy', npyBytes(labels, [m]))
  }
  if (formats.includes('csv')) {
    for (const [space, { dim, values }] of latents)
      await write(`latents-${space}.csv`, csvTable(dataset, rowsOf(values, dim, selection), dim, `${space}_`, items))
    for (const [space, { components, values }] of input.maps ?? []) {
      await write(`map-${space}.csv`, csvTable(dataset, rowsOf(values, components, selection), components, `${space}_map_`, items))
    }
  }
  if (formats.includes('model')) {
    if (!input.model) throw new Error('the model format needs the trained model')
    const { model, runJson } = input.model
    const networks = model.networks()
    try {
      for (const network of networks) {
        await mkdir(join(dir, 'model', network.name), { recursive: true })
        const files = await layersModelFiles(network.model)
        await write(join('model', network.name, 'model.json'), files.json)
        await write(join('model', network.name, 'weights.bin'), files.weights)
      }
    } finally {
      for (const network of networks) network.model.dispose()
    }
    await write(join('model', 'run.json'), runJson)
    const priors = await classPriors(model)
    if (Object.keys(priors).length) await write(join('model', 'priors.json'), JSON.stringify(priors, null, 1))
    await write(join('model', 'README.md'), modelReadme(model, networks))
  }
  if (formats.includes('projector')) {
    await mkdir(join(dir, 'projector'), { recursive: true })
    const sprite = await spriteImage(dataset)
    await write(join('projector', 'sprite.png'), sprite.png)
    const metadata = ['index\tclass\tfile\tsplit']
    for (let i = 0; i < n; i++)
      metadata.push([String(i), tsvField(className(dataset, i)), tsvField(dataset.itemNames[i] ?? ''), splitName(dataset, i)].join('\t'))
    await write(join('projector', 'metadata.tsv'), metadata.join('\n') + '\n')
    const config: string[] = []
    for (const [space, { dim, values }] of latents) {
      const rows: string[] = []
      for (let i = 0; i < n; i++) rows.push(Array.from(values.subarray(i * dim, (i + 1) * dim), (v) => String(v)).join('\t'))
      await write(join('projector', `tensors-${space}.tsv`), rows.join('\n') + '\n')
      config.push(
        [
          'embeddings {',
          `  tensor_name: "${space}"`,
          `  tensor_shape: ${n}`,
          `  tensor_shape: ${dim}`,
          `  tensor_path: "tensors-${space}.tsv"`,
          '  metadata_path: "metadata.tsv"',
          '  sprite {',
          '    image_path: "sprite.png"',
          `    single_image_dim: ${sprite.tileWidth}`,
          `    single_image_dim: ${sprite.tileHeight}`,
          '  }',
          '}'
        ].join('\n')
      )
    }
    await write(join('projector', 'projector_config.pbtxt'), config.join('\n') + '\n')
  }
  return written
}
