// Reader for the IDX format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/):
// a big-endian header (magic, then one uint32 per dimension) followed by the raw values.

import { stat } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { gunzip } from 'node:zlib'
import { assignHeldOutSplit, classBalanceNotes, countClasses, DEFAULT_HELD_OUT_FRACTION, DEFAULT_SEED, type LoadOptions, splitNote } from './common'
import { DatasetError, describeFsError, readRegularFile } from './errors'
import { ProgressReporter } from './progress'
import type { ImageDataset, ProgressCallback, SkippedFile } from './types'

const gunzipAsync = promisify(gunzip)

export const IDX_IMAGES_MAGIC = 2051
export const IDX_LABELS_MAGIC = 2049
const UNSIGNED_BYTE_TYPE = 0x08

const IDX_TYPE_NAMES: Record<number, string> = {
  0x08: 'unsigned bytes',
  0x09: 'signed bytes',
  0x0b: '16-bit integers',
  0x0c: '32-bit integers',
  0x0d: '32-bit floats',
  0x0e: '64-bit floats'
}

export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']

/** Matches the standard names, and the "train-images.idx3-ubyte" spelling of some mirrors. */
const IDX_FILE_NAME = /^(train|t10k)-(images|labels)[-.]idx([13])-ubyte(\.gz)?$/i

export type IdxKind = 'images' | 'labels'

export interface IdxArray {
  /** Sizes from the header: [count, rows, cols] for images, [count] for labels. */
  dims: number[]
  /** The values, a view into the decompressed file (no copy). */
  data: Uint8Array
  /** Bytes after the declared data; non-zero means the file holds more than it says. */
  extraBytes: number
}

export interface IdxFileName {
  set: 'train' | 't10k'
  kind: IdxKind
  gzipped: boolean
}

export function parseIdxFileName(name: string): IdxFileName | null {
  const match = IDX_FILE_NAME.exec(name)
  if (!match) return null
  const kind = match[2].toLowerCase() as IdxKind
  // idx3 goes with images and idx1 with labels; anything else is not a file we know how to use.
  if ((kind === 'images') !== (match[3] === '3')) return null
  return { set: match[1].toLowerCase() as 'train' | 't10k', kind, gzipped: match[4] !== undefined }
}

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b
}

function hexBytes(bytes: Uint8Array, count: number): string {
  return [...bytes.subarray(0, count)].map((b) => b.toString(16).padStart(2, '0')).join(' ')
}

/**
 * Parses an already-decompressed IDX buffer. `path` is only used in error messages.
 * Throws DatasetError for anything that does not look like an unsigned-byte IDX file of `kind`.
 */
export function parseIdx(bytes: Uint8Array, path: string, kind: IdxKind): IdxArray {
  const name = basename(path)
  const expectedDims = kind === 'images' ? 3 : 1
  const expectedMagic = kind === 'images' ? IDX_IMAGES_MAGIC : IDX_LABELS_MAGIC
  const expectedStart = kind === 'images' ? '00 00 08 03' : '00 00 08 01'
  if (bytes.length < 4) {
    throw new DatasetError(
      path,
      `${name} is too short to be an IDX ${kind} file (${bytes.length} bytes). ` + 'The download is probably incomplete; download it again.'
    )
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const magic = view.getUint32(0)
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    throw new DatasetError(
      path,
      `${name} is not an IDX file: it starts with bytes ${hexBytes(bytes, 4)} (magic number ${magic}), ` +
        `but an IDX ${kind} file starts with ${expectedStart} (magic number ${expectedMagic}). ` +
        'The file may be corrupt, or a different file under this name.'
    )
  }
  const type = bytes[2]
  if (type !== UNSIGNED_BYTE_TYPE) {
    const typeName = IDX_TYPE_NAMES[type] ?? `unknown type 0x${type.toString(16).padStart(2, '0')}`
    throw new DatasetError(path, `${name} holds ${typeName}; only IDX files of unsigned bytes (type 0x08, as in MNIST) are supported.`)
  }
  const dimCount = bytes[3]
  if (dimCount !== expectedDims) {
    throw new DatasetError(
      path,
      `${name} has magic number ${magic} (${dimCount} dimension${dimCount === 1 ? '' : 's'}), ` +
        `but an IDX ${kind} file has magic number ${expectedMagic} (${expectedDims} dimension` +
        `${expectedDims === 1 ? '' : 's'}). Is it the ${kind === 'images' ? 'labels' : 'images'} file under the wrong name?`
    )
  }
  const headerBytes = 4 + 4 * dimCount
  if (bytes.length < headerBytes) {
    throw new DatasetError(path, `${name} is truncated: its header needs ${headerBytes} bytes but the file has ${bytes.length}. ` + 'Download it again.')
  }
  const dims: number[] = []
  for (let d = 0; d < dimCount; d++) dims.push(view.getUint32(4 + 4 * d))
  if (dims.some((size) => size === 0)) {
    throw new DatasetError(path, `${name} declares an empty array (sizes ${dims.join(' x ')}).`)
  }
  const declaredBytes = dims.reduce((product, size) => product * size, 1)
  const bodyBytes = bytes.length - headerBytes
  if (bodyBytes < declaredBytes) {
    const what = kind === 'images' ? `${dims[0]} images of ${dims[1]}x${dims[2]} pixels` : `${dims[0]} labels`
    throw new DatasetError(
      path,
      `${name} is truncated: its header declares ${what} (${declaredBytes} bytes) but only ` +
        `${bodyBytes} bytes follow. The download is probably incomplete; download it again.`
    )
  }
  return {
    dims,
    data: bytes.subarray(headerBytes, headerBytes + declaredBytes),
    extraBytes: bodyBytes - declaredBytes
  }
}

const MAX_SINGLE_CHUNK = 1 << 30
/** Largest IDX file read (compressed or not): 2 GiB is 2.7 million 28x28 images. */
const IDX_MAX_BYTES = 2 ** 31 - 1

/**
 * One output chunk the size of the whole result, read from the gzip trailer (ISIZE: uncompressed
 * size mod 2^32): zlib then writes straight into one buffer instead of concatenating thousands
 * of 16 KB chunks, which costs about a third of the time on Fashion-MNIST.
 */
function gunzipChunkSize(gz: Uint8Array): number {
  const fallback = 64 * 1024
  if (gz.length < 18) return fallback
  const declared = new DataView(gz.buffer, gz.byteOffset, gz.byteLength).getUint32(gz.length - 4, true)
  // A wrong trailer (corrupt file) only costs speed here; zlib itself reports the corruption.
  // Deflate cannot expand more than ~1032:1, so a larger claim is corruption, not data.
  const plausible = declared >= 64 && declared <= MAX_SINGLE_CHUNK && declared <= gz.length * 1032
  return plausible ? declared : fallback
}

/** Reads an IDX file, gunzipping it when it starts with the gzip magic bytes (whatever its name). */
export async function readIdxFile(path: string, kind: IdxKind): Promise<IdxArray> {
  let raw: Buffer
  try {
    raw = await readRegularFile(path, IDX_MAX_BYTES)
  } catch (error) {
    throw new DatasetError(path, `${basename(path)}: ${describeFsError(error)}.`, { cause: error })
  }
  let bytes: Uint8Array = raw
  if (isGzip(raw)) {
    try {
      bytes = await gunzipAsync(raw, { chunkSize: gunzipChunkSize(raw), maxOutputLength: IDX_MAX_BYTES })
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error)
      throw new DatasetError(path, `${basename(path)} is gzip-compressed but its data is corrupt or truncated (${detail}). ` + 'Download it again.', {
        cause: error
      })
    }
  }
  return parseIdx(bytes, path, kind)
}

/** The IDX files of a folder, by set and kind; null when the folder has none. */
export function findIdxFiles(dir: string, names: readonly string[]): IdxFiles | null {
  const files: IdxFiles = {}
  let found = false
  for (const name of [...names].sort()) {
    const parsed = parseIdxFileName(name)
    if (!parsed) continue
    const key = `${parsed.set}${parsed.kind === 'images' ? 'Images' : 'Labels'}` as keyof IdxFiles
    // When both "x" and "x.gz" exist, prefer the uncompressed one: it is the same data, faster.
    if (files[key] === undefined || !parsed.gzipped) files[key] = join(dir, name)
    found = true
  }
  return found ? files : null
}

export interface IdxFiles {
  trainImages?: string
  trainLabels?: string
  t10kImages?: string
  t10kLabels?: string
}

/** Fashion-MNIST ships with the same file names as MNIST; only its folder tells them apart. */
export function looksLikeFashionMnist(dir: string): boolean {
  const lastParts = resolve(dir).split(/[\\/]/).slice(-3).join('/')
  return /fashion/i.test(lastParts)
}

interface IdxPart {
  set: 'train' | 't10k'
  images: IdxArray
  imagesPath: string
  labels: IdxArray | null
  labelsPath?: string
}

export async function loadIdxFolder(dir: string, files: IdxFiles, options: LoadOptions = {}, onProgress?: ProgressCallback): Promise<ImageDataset> {
  const started = performance.now()
  const notes: string[] = []
  const skipped: SkippedFile[] = []
  let trainImagesPath = files.trainImages
  let trainLabelsPath = files.trainLabels
  let testImagesPath = files.t10kImages
  let testLabelsPath = files.t10kLabels
  if (!trainImagesPath) {
    if (!testImagesPath) {
      throw new DatasetError(dir, `${dir} holds IDX label files but no images file (train-images-idx3-ubyte or ` + 't10k-images-idx3-ubyte, optionally .gz).')
    }
    // Only a test set: use it as the whole dataset and draw the held-out split ourselves.
    notes.push(`No train-images file; the t10k files are used as the whole dataset.`)
    trainImagesPath = testImagesPath
    trainLabelsPath = testLabelsPath
    testImagesPath = undefined
    testLabelsPath = undefined
  }

  const paths = [trainImagesPath, trainLabelsPath, testImagesPath, testLabelsPath].filter((p): p is string => p !== undefined)
  const sizes = await Promise.all(
    paths.map((p) =>
      stat(p).then(
        (s) => s.size,
        () => 0
      )
    )
  )
  const progress = new ProgressReporter(
    sizes.reduce((sum, size) => sum + size, 0),
    onProgress
  )
  progress.start()
  const sizeOf = (p: string | undefined): number => (p ? sizes[paths.indexOf(p)] : 0)
  const read = async (p: string | undefined, kind: IdxKind): Promise<IdxArray | null> => {
    if (!p) return null
    const array = await readIdxFile(p, kind)
    progress.advance(sizeOf(p))
    return array
  }
  const [trainImages, trainLabels, testImages, testLabels] = await Promise.all([
    read(trainImagesPath, 'images'),
    read(trainLabelsPath, 'labels'),
    read(testImagesPath, 'images'),
    read(testLabelsPath, 'labels')
  ])
  options.signal?.throwIfAborted()

  const parts: IdxPart[] = [{ set: 'train', images: trainImages!, imagesPath: trainImagesPath, labels: trainLabels, labelsPath: trainLabelsPath }]
  if (testImages && testImagesPath) {
    parts.push({ set: 't10k', images: testImages, imagesPath: testImagesPath, labels: testLabels, labelsPath: testLabelsPath })
  }
  for (const part of parts) {
    if (part.labels && part.labels.dims[0] !== part.images.dims[0]) {
      throw new DatasetError(
        part.labelsPath!,
        `${basename(part.labelsPath!)} holds ${part.labels.dims[0]} labels but ` +
          `${basename(part.imagesPath)} holds ${part.images.dims[0]} images; both files must come ` +
          'from the same release of the dataset.'
      )
    }
    for (const [array, path] of [
      [part.images, part.imagesPath],
      [part.labels, part.labelsPath]
    ] as const) {
      if (array && path && array.extraBytes > 0) {
        notes.push(`${basename(path)} has ${array.extraBytes} bytes after its declared data; they were ignored.`)
      }
    }
  }

  const [, rows, cols] = parts[0].images.dims
  if (parts.length === 2) {
    const [, testRows, testCols] = parts[1].images.dims
    if (testRows !== rows || testCols !== cols) {
      throw new DatasetError(
        parts[1].imagesPath,
        `${basename(parts[1].imagesPath)} holds ${testCols}x${testRows} images but ` +
          `${basename(parts[0].imagesPath)} holds ${cols}x${rows}; they cannot form one dataset.`
      )
    }
    // Labels must cover every item or none: drop the unlabelled test set rather than the labels.
    if (parts[0].labels && !parts[1].labels) {
      skipped.push({
        path: parts[1].imagesPath,
        reason: 'no matching t10k-labels file, so these images were left out to keep the dataset labelled'
      })
      parts.pop()
    } else if (!parts[0].labels && parts[1].labels) {
      notes.push('The training images have no labels file, so the t10k labels were ignored too.')
      parts[1].labels = null
    }
  }

  const itemSize = rows * cols
  const count = parts.reduce((sum, part) => sum + part.images.dims[0], 0)
  const pixels = new Uint8Array(count * itemSize)
  const labelled = parts[0].labels !== null
  const labels = labelled ? new Int32Array(count) : null
  const split = new Uint8Array(count)
  const itemNames = new Array<string>(count)
  let offset = 0
  for (const part of parts) {
    const partCount = part.images.dims[0]
    pixels.set(part.images.data, offset * itemSize)
    if (labels && part.labels) labels.set(part.labels.data, offset)
    if (part.set === 't10k') split.fill(1, offset, offset + partCount)
    for (let i = 0; i < partCount; i++) itemNames[offset + i] = `${part.set} #${i}`
    offset += partCount
  }

  const heldOutFraction = options.heldOutFraction ?? DEFAULT_HELD_OUT_FRACTION
  const seed = options.seed ?? DEFAULT_SEED
  if (parts.length === 2) {
    notes.push(`Held-out split: the ${parts[1].images.dims[0]} t10k items; the ${parts[0].images.dims[0]} train items are for training.`)
  } else {
    split.set(assignHeldOutSplit(count, labels, heldOutFraction, seed))
    notes.push(splitNote(split, heldOutFraction, seed, labelled))
  }

  let classNames: string[] = []
  let classCounts: number[] = []
  if (labels) {
    let maxLabel = 0
    const present = new Set<number>()
    for (let i = 0; i < count; i++) {
      present.add(labels[i])
      if (labels[i] > maxLabel) maxLabel = labels[i]
    }
    // Classes are 0..K-1 with K - 1 the largest label. A few empty classes happen (a subset of a
    // set), but a label far beyond the others (200 among 0-9) is a corrupt byte: it would make
    // most classes empty. Name the item that has it.
    const empty = maxLabel + 1 - present.size
    if (empty > present.size) {
      const item = labels.indexOf(maxLabel)
      let local = item
      let file = dir
      for (const part of parts) {
        if (local < part.images.dims[0]) {
          file = part.labelsPath ?? dir
          break
        }
        local -= part.images.dims[0]
      }
      throw new DatasetError(
        file,
        `${basename(file)}: item ${local} has label ${maxLabel}, which would make ${maxLabel + 1} classes of which ${empty} are empty ` +
          `(the labels present are ${[...present]
            .sort((a, b) => a - b)
            .slice(0, 12)
            .join(', ')}${present.size > 12 ? ', …' : ''}); the file is probably corrupt`
      )
    }
    const fashion = looksLikeFashionMnist(dir) && maxLabel < FASHION_MNIST_CLASSES.length
    classNames = fashion ? FASHION_MNIST_CLASSES.slice() : Array.from({ length: maxLabel + 1 }, (_, c) => String(c))
    classCounts = countClasses(labels, classNames.length)
    notes.push(...classBalanceNotes(classNames, classCounts))
  } else {
    notes.push('No labels file: the dataset is unlabelled.')
  }
  if (options.size !== undefined && (options.size !== rows || options.size !== cols)) {
    notes.push(`The size option (${options.size}) is not applied to IDX files; items keep their ${cols}x${rows} pixels.`)
  }
  progress.finish()

  return {
    name: basename(resolve(dir)),
    width: cols,
    height: rows,
    channels: 1,
    pixels,
    labels,
    classNames,
    split,
    itemNames,
    report: {
      layout: 'idx',
      source: dir,
      itemCount: count,
      classCounts,
      sourceSizes: `${cols}x${rows}`,
      width: cols,
      height: rows,
      channels: 1,
      skipped,
      notes,
      seconds: (performance.now() - started) / 1000
    }
  }
}
