import { execFileSync } from 'node:child_process'
import { existsSync, unlinkSync } from 'node:fs'
import { chmod, mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'
import sharp from 'sharp'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { assignHeldOutSplit, mapPool, naturalCompare } from '../../../../electron/engine/datasets/common'
import { chooseTargetSize } from '../../../../electron/engine/datasets/image-folder/decode'
import { splitCsvLine } from '../../../../electron/engine/datasets/image-folder/labels-csv'
import {
  DatasetError,
  defaultDatasetPath,
  FASHION_MNIST_CLASSES,
  generateShapes,
  type ImageDataset,
  loadDataset,
  loadDefaultDataset,
  type LoadProgress,
  parseIdx,
  SHAPE_CLASSES,
  writeShapesFolder
} from '../../../../electron/engine/datasets/index'

let dir: string

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lc-datasets-'))
})

afterEach(async () => {
  // Restore permissions changed by a test so the folder can be removed.
  await chmod(dir, 0o755).catch(() => undefined)
  await rm(dir, { recursive: true, force: true })
})

// ---------- helpers that write real image files ----------

async function writePng(path: string, width: number, height: number, channels: 1 | 2 | 3 | 4, fill: number | number[]): Promise<void> {
  const values = typeof fill === 'number' ? new Array<number>(channels).fill(fill) : fill
  const data = Buffer.alloc(width * height * channels)
  for (let i = 0; i < width * height; i++) for (let c = 0; c < channels; c++) data[i * channels + c] = values[c]
  let image = sharp(data, { raw: { width, height, channels } })
  // sharp writes 1- and 2-channel raw input as RGB(A) unless told the data is grayscale.
  if (channels <= 2) image = image.toColourspace('b-w')
  await mkdir(join(path, '..'), { recursive: true })
  await writeFile(path, await image.png().toBuffer())
}

async function writeGrey(path: string, size: number, value: number): Promise<void> {
  await writePng(path, size, size, 1, value)
}

async function validPngBytes(size = 32): Promise<Buffer> {
  return sharp({ create: { width: size, height: size, channels: 3, background: '#808080', noise: { type: 'gaussian', mean: 128, sigma: 40 } } })
    .png()
    .toBuffer()
}

function item(dataset: ImageDataset, index: number): Uint8Array {
  const bytes = dataset.width * dataset.height * dataset.channels
  return dataset.pixels.subarray(index * bytes, (index + 1) * bytes)
}

function itemByName(dataset: ImageDataset, name: string): Uint8Array {
  const index = dataset.itemNames.indexOf(name)
  expect(index, `item ${name}`).toBeGreaterThanOrEqual(0)
  return item(dataset, index)
}

function reasonFor(dataset: ImageDataset, fileName: string): string | undefined {
  return dataset.report.skipped.find((s) => s.path.endsWith(fileName))?.reason
}

async function expectDatasetError(promise: Promise<unknown>): Promise<DatasetError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e
  )
  expect(error).toBeInstanceOf(DatasetError)
  return error as DatasetError
}

// IDX files in the MNIST layout: big-endian magic, dims, then unsigned bytes.
function idxImages(count: number, rows: number, cols: number, valueOf: (i: number) => number): Buffer {
  const header = Buffer.alloc(16)
  header.writeUInt32BE(2051, 0)
  header.writeUInt32BE(count, 4)
  header.writeUInt32BE(rows, 8)
  header.writeUInt32BE(cols, 12)
  const body = Buffer.alloc(count * rows * cols)
  for (let i = 0; i < count; i++) body.fill(valueOf(i), i * rows * cols, (i + 1) * rows * cols)
  return Buffer.concat([header, body])
}

function idxLabels(labels: number[]): Buffer {
  const header = Buffer.alloc(8)
  header.writeUInt32BE(2049, 0)
  header.writeUInt32BE(labels.length, 4)
  return Buffer.concat([header, Buffer.from(labels)])
}

// ---------- generated shapes ----------

describe('generateShapes', () => {
  it('is deterministic for a seed, balanced, grayscale and labelled', () => {
    const a = generateShapes({ count: 120, seed: 7 })
    const b = generateShapes({ count: 120, seed: 7 })
    const c = generateShapes({ count: 120, seed: 8 })
    expect(a.width).toBe(28)
    expect(a.channels).toBe(1)
    expect(a.pixels.length).toBe(120 * 28 * 28)
    expect(a.pixels).toEqual(b.pixels)
    expect(a.split).toEqual(b.split)
    expect(a.pixels).not.toEqual(c.pixels)
    expect(a.classNames).toEqual([...SHAPE_CLASSES])
    expect(a.report.classCounts).toEqual([20, 20, 20, 20, 20, 20])
    expect(a.report.layout).toBe('generated')
    for (let i = 0; i < a.report.itemCount; i++) {
      const pixels = item(a, i)
      // Every item shows something, on a black background (corners stay dark).
      expect(Math.max(...pixels)).toBeGreaterThan(100)
      expect(pixels[0]).toBe(0)
    }
  })

  it('draws shapes that differ by class (a ring has a hole, a circle does not)', () => {
    const d = generateShapes({ count: 600, size: 32, seed: 1 })
    const meanInk = (label: number): number => {
      let sum = 0
      let n = 0
      for (let i = 0; i < d.report.itemCount; i++) {
        if (d.labels![i] !== label) continue
        for (const v of item(d, i)) sum += v > 0 ? 1 : 0
        n++
      }
      return sum / n
    }
    const circle = SHAPE_CLASSES.indexOf('circle')
    const ring = SHAPE_CLASSES.indexOf('ring')
    const bar = SHAPE_CLASSES.indexOf('bar')
    expect(meanInk(ring)).toBeLessThan(meanInk(circle))
    expect(meanInk(bar)).toBeLessThan(meanInk(circle))
  })

  it('honours the size option', () => {
    const d = generateShapes({ count: 12, size: 16, seed: 0 })
    expect(d.width).toBe(16)
    expect(d.pixels.length).toBe(12 * 16 * 16)
  })
})

// ---------- image folders: layouts ----------

describe('loadDataset: class folders', () => {
  it('round-trips shapes written with writeShapesFolder: same pixels, same labels', async () => {
    const written = await writeShapesFolder(dir, { countPerClass: 20, size: 28, seed: 3 })
    const loaded = await loadDataset(dir)
    expect(loaded.report.layout).toBe('class-folders')
    expect(loaded.report.itemCount).toBe(120)
    expect(loaded.width).toBe(28)
    expect(loaded.height).toBe(28)
    expect(loaded.channels).toBe(1)
    expect(loaded.classNames).toEqual([...SHAPE_CLASSES])
    expect(loaded.report.classCounts).toEqual([20, 20, 20, 20, 20, 20])
    expect(loaded.report.skipped).toEqual([])
    expect(loaded.report.notes.join(' ')).toContain('source size, 28x28')
    for (let i = 0; i < written.report.itemCount; i++) {
      const name = written.itemNames[i]
      const index = loaded.itemNames.indexOf(name)
      expect(index, name).toBeGreaterThanOrEqual(0)
      expect(loaded.labels![index]).toBe(written.labels![i])
      expect(loaded.classNames[loaded.labels![index]]).toBe(name.split('/')[0])
      expect(item(loaded, index)).toEqual(item(written, i))
    }
    // Class folders are read in order, files in natural order.
    expect(loaded.itemNames.slice(0, 3)).toEqual(['bar/0000.png', 'bar/0001.png', 'bar/0002.png'])
  })

  it('counts images nested deeper inside a class folder for that class, and says so', async () => {
    await writeGrey(join(dir, 'cats', 'a.png'), 8, 10)
    await writeGrey(join(dir, 'cats', 'indoor', 'sofa', 'b.png'), 8, 20)
    await writeGrey(join(dir, 'dogs', 'c.png'), 8, 30)
    const d = await loadDataset(dir)
    expect(d.classNames).toEqual(['cats', 'dogs'])
    expect(d.itemNames).toEqual(['cats/a.png', 'cats/indoor/sofa/b.png', 'dogs/c.png'])
    expect(Array.from(d.labels!)).toEqual([0, 0, 1])
    expect(itemByName(d, 'cats/indoor/sofa/b.png')[0]).toBe(20)
    const notes = d.report.notes.join(' ')
    expect(notes).toContain('nested inside class folders')
    expect(notes).toContain('cats/indoor/sofa/b.png')
  })

  it('skips images lying at the top level next to class folders', async () => {
    await writeGrey(join(dir, 'a', '1.png'), 8, 1)
    await writeGrey(join(dir, 'a', '2.png'), 8, 1)
    await writeGrey(join(dir, 'b', '3.png'), 8, 1)
    await writeGrey(join(dir, 'stray.png'), 8, 1)
    const d = await loadDataset(dir)
    expect(d.report.layout).toBe('class-folders')
    expect(d.report.itemCount).toBe(3)
    expect(reasonFor(d, 'stray.png')).toMatch(/belongs to no class/)
  })

  it('loads a single class but notes that CDVAE needs two', async () => {
    await writeGrey(join(dir, 'only', '1.png'), 8, 1)
    await writeGrey(join(dir, 'only', '2.png'), 8, 2)
    const d = await loadDataset(dir)
    expect(d.classNames).toEqual(['only'])
    expect(d.report.notes.join(' ')).toMatch(/Only one class \("only"\).*CDVAE/)
  })

  it('notes very unbalanced classes with their counts', async () => {
    await mapPool(
      Array.from({ length: 12 }, (_, i) => i),
      4,
      (i) => writeGrey(join(dir, 'many', `${i}.png`), 6, i)
    )
    await writeGrey(join(dir, 'few', '0.png'), 6, 0)
    const d = await loadDataset(dir)
    expect(d.report.classCounts).toEqual([1, 12])
    const note = d.report.notes.find((n) => n.includes('unbalanced'))
    expect(note).toBeDefined()
    expect(note).toContain('"many" has 12 items')
    expect(note).toContain('"few" only 1')
  })

  it('drops a class whose every image is broken', async () => {
    await writeGrey(join(dir, 'good', '1.png'), 8, 1)
    await writeGrey(join(dir, 'good2', '1.png'), 8, 1)
    await mkdir(join(dir, 'bad'))
    await writeFile(join(dir, 'bad', 'x.png'), Buffer.from('not a png at all'))
    const d = await loadDataset(dir)
    expect(d.classNames).toEqual(['good', 'good2'])
    expect(Array.from(d.labels!)).toEqual([0, 1])
    expect(d.report.notes.join(' ')).toContain('"bad"')
  })
})

describe('loadDataset: flat folders', () => {
  it('loads a flat folder unlabelled; a pure white image loads as 255s', async () => {
    await writePng(join(dir, 'white.png'), 20, 20, 3, 255)
    await writePng(join(dir, 'grey.png'), 20, 20, 3, [90, 90, 90])
    const d = await loadDataset(dir)
    expect(d.report.layout).toBe('flat-folder')
    expect(d.labels).toBeNull()
    expect(d.classNames).toEqual([])
    expect(d.report.classCounts).toEqual([])
    expect(d.itemNames).toEqual(['grey.png', 'white.png'])
    // RGB PNGs are colour by their metadata even when the pixels are grey.
    expect(d.channels).toBe(3)
    expect(d.width).toBe(20)
    expect(item(d, 1).every((v) => v === 255)).toBe(true)
    expect(item(d, 0).every((v) => v === 90)).toBe(true)
    expect(d.report.notes.join(' ')).toContain('unlabelled')
  })

  it('reads labels from labels.csv (header, quoted names) and lists bad lines with their numbers', async () => {
    await writeGrey(join(dir, 'a.png'), 8, 10)
    await writeGrey(join(dir, 'b, with comma.png'), 8, 20)
    await writeGrey(join(dir, 'c.png'), 8, 30)
    await writeGrey(join(dir, 'unlisted.png'), 8, 40)
    await writeFile(
      join(dir, 'labels.csv'),
      ['file,label', 'a.png,cat', '"b, with comma.png",dog', 'missing.png,cat', 'just-one-field', 'c.png,', 'c.png,dog', 'a.png,dog', ''].join('\r\n')
    )
    const d = await loadDataset(dir)
    expect(d.report.layout).toBe('flat-folder')
    expect(d.classNames).toEqual(['cat', 'dog'])
    expect(d.itemNames).toEqual(['a.png', 'b, with comma.png', 'c.png'])
    expect(Array.from(d.labels!)).toEqual([0, 1, 1])
    expect(item(d, 1)[0]).toBe(20)
    const reasons = d.report.skipped.map((s) => s.reason)
    expect(reasonFor(d, 'missing.png')).toMatch(/line 4 names "missing.png", which is not in the folder/)
    expect(reasons).toContainEqual(expect.stringMatching(/line 5 is malformed.*just-one-field/))
    expect(reasons).toContainEqual(expect.stringMatching(/line 6 is malformed/))
    expect(reasons).toContainEqual(expect.stringMatching(/line 8 lists "a.png" again \(first on line 2\)/))
    expect(reasonFor(d, 'unlisted.png')).toMatch(/not listed in labels.csv/)
  })

  it('leaves out labels.csv lines whose label has control characters or runs over 100 characters', async () => {
    for (const name of ['a.png', 'b.png', 'c.png', 'd.png']) await writeGrey(join(dir, name), 8, 10)
    await writeFile(join(dir, 'labels.csv'), `file,label\na.png,cat\nb.png,dog\nc.png,bad\u0000label\nd.png,${'x'.repeat(5000)}\n`)
    const d = await loadDataset(dir)
    expect(d.classNames).toEqual(['cat', 'dog'])
    expect(d.itemNames).toEqual(['a.png', 'b.png'])
    expect(reasonFor(d, 'c.png')).toMatch(/line 4: the label contains control characters/)
    expect(reasonFor(d, 'd.png')).toMatch(/line 5: the label is 5000 characters long \(at most 100\)/)
  })

  it('reads labels.csv without a header', async () => {
    await writeGrey(join(dir, '1.png'), 8, 1)
    await writeGrey(join(dir, '2.png'), 8, 2)
    await writeGrey(join(dir, '3.png'), 8, 3)
    await writeFile(join(dir, 'labels.csv'), '1.png,0\n2.png,1\n3.png,1\n')
    const d = await loadDataset(dir)
    expect(d.classNames).toEqual(['0', '1'])
    expect(Array.from(d.labels!)).toEqual([0, 1, 1])
    expect(d.report.skipped).toEqual([])
  })

  it('throws DatasetError naming labels.csv when it names no image', async () => {
    await writeGrey(join(dir, '1.png'), 8, 1)
    await writeFile(join(dir, 'labels.csv'), 'nothing.png,0\n')
    const error = await expectDatasetError(loadDataset(dir))
    expect(error.path).toBe(join(dir, 'labels.csv'))
    expect(error.message).toContain('labels.csv')
    expect(error.message).toContain('nothing.png')
  })
})

// ---------- image folders: size, channels, alpha, depth ----------

describe('loadDataset: size and channel policy', () => {
  it('resizes mixed small sources to 32x32 with a centre crop by default, and says so', async () => {
    await writeGrey(join(dir, 'a.png'), 20, 0)
    await writePng(join(dir, 'b.png'), 48, 40, 1, 0)
    const d = await loadDataset(dir)
    expect([d.width, d.height, d.channels]).toEqual([32, 32, 1])
    expect(d.report.sourceSizes).toBe('mixed: 20x20 .. 48x40')
    expect(d.report.notes.join(' ')).toMatch(/resized to 32x32 with fit "cover".*centre-cropped/)
  })

  it('uses 64x64 for large sources and the size option when given', async () => {
    await writePng(join(dir, 'big.png'), 100, 80, 3, [10, 20, 30])
    const d = await loadDataset(dir)
    expect([d.width, d.height, d.channels]).toEqual([64, 64, 3])
    expect(Array.from(item(d, 0).subarray(0, 3))).toEqual([10, 20, 30])
    const small = await loadDataset(dir, { size: 16 })
    expect([small.width, small.height]).toEqual([16, 16])
    expect(chooseTargetSize([{ width: 28, height: 28 }])).toEqual({ width: 28, height: 28 })
    expect(chooseTargetSize([{ width: 28, height: 20 }])).toEqual({ width: 28, height: 20 })
    expect(chooseTargetSize([{ width: 40, height: 40 }])).toEqual({ width: 32, height: 32 })
    expect(
      chooseTargetSize([
        { width: 64, height: 64 },
        { width: 500, height: 300 }
      ])
    ).toEqual({ width: 64, height: 64 })
  })

  it("pads with white under fit 'contain' and crops under 'cover'", async () => {
    // A black 40x20 image into 16x16: contain leaves white bands top and bottom.
    await writePng(join(dir, 'wide.png'), 40, 20, 1, 0)
    const contain = await loadDataset(dir, { size: 16, fit: 'contain' })
    const pixels = item(contain, 0)
    expect(pixels[0]).toBe(255) // top-left: padding
    expect(pixels[8 * 16 + 8]).toBe(0) // centre: image
    expect(pixels[15 * 16]).toBe(255) // bottom-left: padding
    expect(contain.report.notes.join(' ')).toContain('padded with white')
    const cover = await loadDataset(dir, { size: 16, fit: 'cover' })
    expect(item(cover, 0).every((v) => v === 0)).toBe(true)
  })

  it('loads everything as RGB when any image is in colour; grey images repeat across channels', async () => {
    await writePng(join(dir, 'red.png'), 8, 8, 3, [255, 0, 0])
    await writeGrey(join(dir, 'grey.png'), 8, 77)
    const d = await loadDataset(dir)
    expect(d.channels).toBe(3)
    expect(Array.from(itemByName(d, 'red.png').subarray(0, 3))).toEqual([255, 0, 0])
    expect(Array.from(itemByName(d, 'grey.png').subarray(0, 6))).toEqual([77, 77, 77, 77, 77, 77])
    expect(d.report.notes.join(' ')).toContain('1 of 2 images are in colour')
  })

  it('flattens transparency onto white', async () => {
    await writePng(join(dir, 'clear.png'), 8, 8, 4, [0, 0, 0, 0])
    await writePng(join(dir, 'solid.png'), 8, 8, 4, [0, 0, 255, 255])
    await writePng(join(dir, 'grey-alpha.png'), 8, 8, 2, [0, 0])
    const d = await loadDataset(dir)
    expect(d.channels).toBe(3)
    expect(itemByName(d, 'clear.png').every((v) => v === 255)).toBe(true)
    expect(itemByName(d, 'grey-alpha.png').every((v) => v === 255)).toBe(true)
    expect(Array.from(itemByName(d, 'solid.png').subarray(0, 3))).toEqual([0, 0, 255])
    expect(d.report.notes.join(' ')).toContain('3 images have transparency; it was flattened onto a white background')
  })

  it('keeps a grayscale set with alpha as 1 channel', async () => {
    await writePng(join(dir, 'ga.png'), 8, 8, 2, [0, 0])
    await writeGrey(join(dir, 'g.png'), 8, 5)
    const d = await loadDataset(dir)
    expect(d.channels).toBe(1)
    expect(itemByName(d, 'ga.png').every((v) => v === 255)).toBe(true)
    expect(itemByName(d, 'g.png').every((v) => v === 5)).toBe(true)
  })

  it('reduces 16-bit images to 8 bits', async () => {
    const grey = new Uint16Array(4 * 4).fill(65535)
    grey[0] = 0
    grey[1] = 32896 // 128 * 257
    await writeFile(
      join(dir, 'g16.png'),
      await sharp(grey, { raw: { width: 4, height: 4, channels: 1 } })
        .toColourspace('grey16')
        .png()
        .toBuffer()
    )
    const d = await loadDataset(dir)
    expect(d.channels).toBe(1)
    expect(Array.from(item(d, 0).subarray(0, 3))).toEqual([0, 128, 255])
    expect(d.report.notes.join(' ')).toContain('16-bit')

    const rgb = new Uint16Array(4 * 4 * 3).fill(65535)
    rgb[1] = 0
    await writeFile(
      join(dir, 'rgb16.png'),
      await sharp(rgb, { raw: { width: 4, height: 4, channels: 3 } })
        .toColourspace('rgb16')
        .png()
        .toBuffer()
    )
    const both = await loadDataset(dir)
    expect(both.channels).toBe(3)
    expect(Array.from(itemByName(both, 'rgb16.png').subarray(0, 3))).toEqual([255, 0, 255])
    expect(both.report.notes.join(' ')).toContain('2 images are 16-bit')
  })
})

// ---------- image folders: bad input ----------

describe('loadDataset: bad files are skipped with a reason', () => {
  it('skips corrupt, truncated, empty and non-image files; ignores OS litter silently', async () => {
    await writeGrey(join(dir, 'good1.png'), 8, 200)
    await writeGrey(join(dir, 'good2.png'), 8, 100)
    const png = await validPngBytes()
    // A real PNG signature and header, then garbage where the image data should be.
    await writeFile(join(dir, 'corrupt.png'), Buffer.concat([png.subarray(0, 33), Buffer.alloc(200, 0x5a)]))
    await writeFile(join(dir, 'garbage.png'), Buffer.from('this is text, not a png file'))
    await writeFile(join(dir, 'truncated.png'), png.subarray(0, Math.floor(png.length / 2)))
    await writeFile(join(dir, 'empty.png'), Buffer.alloc(0))
    await writeFile(join(dir, 'notes.txt'), 'hello')
    await writeFile(join(dir, '.DS_Store'), Buffer.alloc(100, 1))
    await writeFile(join(dir, 'Thumbs.db'), Buffer.alloc(100, 1))
    await writeFile(join(dir, 'desktop.ini'), '[.ShellClassInfo]')
    await writeGrey(join(dir, '.hidden.png'), 8, 1)
    await mkdir(join(dir, '__MACOSX'))
    await writeFile(join(dir, '__MACOSX', '._good1.png'), Buffer.alloc(10))

    const d = await loadDataset(dir)
    expect(d.itemNames).toEqual(['good1.png', 'good2.png'])
    expect(item(d, 0).every((v) => v === 200)).toBe(true)
    expect(reasonFor(d, 'corrupt.png')).toMatch(/corrupt or truncated PNG image/)
    expect(reasonFor(d, 'garbage.png')).toMatch(/corrupt image: the contents are not PNG data/)
    expect(reasonFor(d, 'truncated.png')).toMatch(/corrupt or truncated PNG image/)
    expect(reasonFor(d, 'empty.png')).toBe('empty file (zero bytes)')
    expect(reasonFor(d, 'notes.txt')).toBe('not an image file (.txt)')
    const skippedNames = d.report.skipped.map((s) => s.path)
    for (const litter of ['.DS_Store', 'Thumbs.db', 'desktop.ini', '.hidden.png', '__MACOSX']) {
      expect(
        skippedNames.some((p) => p.includes(litter)),
        litter
      ).toBe(false)
    }
    expect(d.report.skipped).toHaveLength(5)
    expect(d.report.notes.join(' ')).toContain('5 files were skipped')
  })

  it('does not follow symlink loops', async () => {
    await writeGrey(join(dir, 'a', '1.png'), 8, 1)
    await writeGrey(join(dir, 'b', '2.png'), 8, 2)
    await symlink(dir, join(dir, 'a', 'back-to-root'))
    await symlink(join(dir, 'b'), join(dir, 'a', 'to-b'))
    await symlink(join(dir, 'a', 'self'), join(dir, 'a', 'self'))
    const d = await loadDataset(dir)
    expect(d.report.layout).toBe('class-folders')
    expect(d.itemNames).toEqual(['a/1.png', 'b/2.png'])
    expect(reasonFor(d, 'back-to-root')).toMatch(/already scanned.*not followed/)
    expect(reasonFor(d, 'to-b')).toMatch(/already scanned/)
    expect(reasonFor(d, 'self')).toMatch(/symbolic link loop/)
  })

  it('reads nothing outside the folder it was given: links out of it are listed and not followed', async () => {
    const outside = await mkdtemp(join(tmpdir(), 'lc-datasets-outside-'))
    try {
      await writeGrey(join(outside, 'x.png'), 8, 9)
      await writeGrey(join(dir, 'a', '1.png'), 8, 1)
      await writeGrey(join(dir, 'a', '2.png'), 8, 2)
      await symlink(outside, join(dir, 'b'))
      await symlink(join(outside, 'x.png'), join(dir, 'a', 'linked.png'))
      // An in-folder link is fine.
      await symlink(join(dir, 'a', '1.png'), join(dir, 'a', 'again.png'))
      const d = await loadDataset(dir)
      expect(d.itemNames).toEqual(['a/1.png', 'a/2.png', 'a/again.png'])
      expect(d.classNames).toEqual(['a'])
      expect(reasonFor(d, join(dir, 'b'))).toMatch(/outside the dataset folder; not followed/)
      expect(reasonFor(d, 'linked.png')).toMatch(/outside the dataset folder; not followed/)
    } finally {
      await rm(outside, { recursive: true, force: true })
    }
  })

  it.skipIf(process.getuid?.() === 0)('skips an unreadable file with "permission denied"', async () => {
    await writeGrey(join(dir, 'ok.png'), 8, 1)
    await writeGrey(join(dir, 'locked.png'), 8, 1)
    await chmod(join(dir, 'locked.png'), 0o000)
    const d = await loadDataset(dir)
    expect(d.itemNames).toEqual(['ok.png'])
    expect(reasonFor(d, 'locked.png')).toMatch(/permission denied/)
  })

  it('reports a file that vanished during the load', async () => {
    for (let i = 0; i < 4; i++) await writeGrey(join(dir, `${i}.png`), 8, i)
    let deleted = false
    const d = await loadDataset(dir, {}, () => {
      // The first progress report comes after the folder was scanned, before any file is read.
      if (!deleted) {
        deleted = true
        // Synchronously, so the file is gone before any read can start.
        unlinkSync(join(dir, '2.png'))
      }
    })
    expect(d.itemNames).toEqual(['0.png', '1.png', '3.png'])
    expect(reasonFor(d, '2.png')).toMatch(/vanished during load/)
  })
})

describe('loadDataset: unusable folders throw DatasetError naming the folder', () => {
  it('an empty folder', async () => {
    const error = await expectDatasetError(loadDataset(dir))
    expect(error.path).toBe(dir)
    expect(error.message).toContain(dir)
    expect(error.message).toMatch(/no image files/)
  })

  it('a folder holding only OS litter', async () => {
    await writeFile(join(dir, '.DS_Store'), 'x')
    await writeFile(join(dir, 'Thumbs.db'), 'x')
    const error = await expectDatasetError(loadDataset(dir))
    expect(error.message).toContain(dir)
  })

  it('a folder with no decodable image, listing what went wrong', async () => {
    await writeFile(join(dir, 'a.png'), Buffer.alloc(0))
    await writeFile(join(dir, 'b.txt'), 'text')
    const error = await expectDatasetError(loadDataset(dir))
    expect(error.path).toBe(dir)
    expect(error.message).toContain(`No image in ${dir} could be loaded`)
    expect(error.message).toContain('a.png: empty file (zero bytes)')
    expect(error.message).toContain('b.txt: not an image file')
  })

  it('a missing folder, and a file instead of a folder', async () => {
    const missing = join(dir, 'nope')
    const error = await expectDatasetError(loadDataset(missing))
    expect(error.path).toBe(missing)
    expect(error.message).toContain(missing)
    expect(error.message).toContain('not found')
    await writeGrey(join(dir, 'x.png'), 8, 1)
    const fileError = await expectDatasetError(loadDataset(join(dir, 'x.png')))
    expect(fileError.message).toContain('is a file; choose the folder')
  })

  it('rejects invalid options', async () => {
    await expect(loadDataset(dir, { size: 0 })).rejects.toThrow(RangeError)
    await expect(loadDataset(dir, { heldOutFraction: 1 })).rejects.toThrow(RangeError)
  })
})

// ---------- split, progress, cancel ----------

describe('held-out split, progress and cancellation', () => {
  it('draws a stratified held-out split fixed by the seed', async () => {
    await writeShapesFolder(dir, { countPerClass: 20, size: 12, seed: 0 })
    const a = await loadDataset(dir, { seed: 5 })
    const b = await loadDataset(dir, { seed: 5 })
    const c = await loadDataset(dir, { seed: 6, heldOutFraction: 0.25 })
    expect(a.split).toEqual(b.split)
    expect(a.split).not.toEqual(c.split)
    for (let label = 0; label < 6; label++) {
      let heldOut = 0
      let heldOutC = 0
      for (let i = 0; i < a.report.itemCount; i++) {
        if (a.labels![i] === label) heldOut += a.split[i]
        if (c.labels![i] === label) heldOutC += c.split[i]
      }
      expect(heldOut).toBe(2)
      expect(heldOutC).toBe(5)
    }
    expect(a.report.notes.join(' ')).toContain('Held-out split: 12 of 120 items (10% of each class), drawn with seed 5')
    const none = assignHeldOutSplit(50, null, 0, 0)
    expect(none.every((v) => v === 0)).toBe(true)
    // A class is never held out entirely.
    expect(Array.from(assignHeldOutSplit(1, Int32Array.from([0]), 0.9, 0))).toEqual([0])
  })

  it('reports progress up to done === total with an ETA', async () => {
    await writeShapesFolder(dir, { countPerClass: 30, size: 16, seed: 0 })
    const events: LoadProgress[] = []
    await loadDataset(dir, {}, (p) => events.push(p))
    expect(events[0]).toEqual({ done: 0, total: 180, etaSeconds: null })
    const last = events[events.length - 1]
    expect(last.done).toBe(180)
    expect(last.total).toBe(180)
    expect(last.etaSeconds).toBe(0)
    for (let i = 1; i < events.length; i++) expect(events[i].done).toBeGreaterThanOrEqual(events[i - 1].done)
    // About every 1%: not one callback per file, not just start and end.
    expect(events.length).toBeGreaterThan(10)
    expect(events.length).toBeLessThanOrEqual(181)
  })

  it('stops when the signal aborts', async () => {
    await writeShapesFolder(dir, { countPerClass: 10, size: 16, seed: 0 })
    const controller = new AbortController()
    const loading = loadDataset(dir, { signal: controller.signal }, () => controller.abort(new Error('cancelled by user')))
    await expect(loading).rejects.toThrow('cancelled by user')
  })
})

// ---------- IDX ----------

describe('IDX files', () => {
  async function writeIdxSet(
    folder: string,
    options: { gzip?: boolean; train?: number[]; test?: number[] | null; rows?: number; cols?: number } = {}
  ): Promise<void> {
    const rows = options.rows ?? 3
    const cols = options.cols ?? 4
    const train = options.train ?? [3, 1, 4, 1, 5]
    const test = options.test === undefined ? [9, 2] : options.test
    const suffix = options.gzip ? '.gz' : ''
    const pack = (bytes: Buffer): Buffer => (options.gzip ? gzipSync(bytes) : bytes)
    await mkdir(folder, { recursive: true })
    await writeFile(join(folder, `train-images-idx3-ubyte${suffix}`), pack(idxImages(train.length, rows, cols, (i) => i * 10)))
    await writeFile(join(folder, `train-labels-idx1-ubyte${suffix}`), pack(idxLabels(train)))
    if (test) {
      await writeFile(join(folder, `t10k-images-idx3-ubyte${suffix}`), pack(idxImages(test.length, rows, cols, (i) => 200 + i)))
      await writeFile(join(folder, `t10k-labels-idx1-ubyte${suffix}`), pack(idxLabels(test)))
    }
  }

  for (const gzip of [false, true]) {
    it(`loads train + t10k ${gzip ? 'gzipped' : 'uncompressed'}: train is split 0, t10k split 1`, async () => {
      await writeIdxSet(dir, { gzip })
      const d = await loadDataset(dir)
      expect(d.report.layout).toBe('idx')
      expect([d.width, d.height, d.channels]).toEqual([4, 3, 1])
      expect(d.report.itemCount).toBe(7)
      expect(Array.from(d.labels!)).toEqual([3, 1, 4, 1, 5, 9, 2])
      expect(Array.from(d.split)).toEqual([0, 0, 0, 0, 0, 1, 1])
      expect(d.classNames).toEqual(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])
      expect(d.report.classCounts).toEqual([0, 2, 1, 1, 1, 1, 0, 0, 0, 1])
      expect(item(d, 2).every((v) => v === 20)).toBe(true)
      expect(item(d, 6).every((v) => v === 201)).toBe(true)
      expect(d.itemNames[0]).toBe('train #0')
      expect(d.itemNames[6]).toBe('t10k #1')
    })
  }

  it('uses the Fashion-MNIST class names when the folder name says fashion', async () => {
    const fashion = join(dir, 'my-fashion-data')
    await writeIdxSet(fashion, { test: null })
    const d = await loadDataset(fashion)
    expect(d.classNames).toEqual(FASHION_MNIST_CLASSES)
    expect(d.classNames[9]).toBe('Ankle boot')
  })

  it('draws a seeded held-out split when there is no t10k set, and loads without labels', async () => {
    await writeIdxSet(dir, { test: null, train: Array.from({ length: 40 }, (_, i) => i % 2) })
    const a = await loadDataset(dir, { seed: 1 })
    const b = await loadDataset(dir, { seed: 1 })
    expect(a.split).toEqual(b.split)
    expect(a.split.reduce((s, v) => s + v, 0)).toBe(4)
    await unlink(join(dir, 'train-labels-idx1-ubyte'))
    const unlabelled = await loadDataset(dir)
    expect(unlabelled.labels).toBeNull()
    expect(unlabelled.classNames).toEqual([])
  })

  it('rejects a wrong magic number, naming the file', async () => {
    await writeIdxSet(dir)
    const bytes = idxImages(5, 3, 4, () => 0)
    bytes.writeUInt32BE(0x12345678, 0)
    await writeFile(join(dir, 'train-images-idx3-ubyte'), bytes)
    const error = await expectDatasetError(loadDataset(dir))
    expect(error.path).toBe(join(dir, 'train-images-idx3-ubyte'))
    expect(error.message).toContain('train-images-idx3-ubyte')
    expect(error.message).toContain('not an IDX file')
    expect(error.message).toContain('2051')
  })

  it('rejects a labels file in place of an images file', async () => {
    await writeIdxSet(dir)
    await writeFile(join(dir, 't10k-images-idx3-ubyte'), idxLabels([1, 2]))
    const error = await expectDatasetError(loadDataset(dir))
    expect(error.message).toMatch(/t10k-images-idx3-ubyte has magic number 2049.*expected|magic number 2051/)
  })

  it('rejects a truncated body with the declared and actual sizes', async () => {
    await writeIdxSet(dir, { gzip: true })
    const full = idxImages(5, 3, 4, () => 7)
    await writeFile(join(dir, 'train-images-idx3-ubyte.gz'), gzipSync(full.subarray(0, full.length - 10)))
    const error = await expectDatasetError(loadDataset(dir))
    expect(error.message).toContain('train-images-idx3-ubyte.gz is truncated')
    expect(error.message).toContain('5 images of 3x4 pixels (60 bytes) but only 50 bytes follow')
  })

  it('rejects a truncated gzip stream', async () => {
    await writeIdxSet(dir, { gzip: true })
    const gz = gzipSync(idxImages(5, 3, 4, (i) => i))
    await writeFile(join(dir, 'train-images-idx3-ubyte.gz'), gz.subarray(0, gz.length - 12))
    const error = await expectDatasetError(loadDataset(dir))
    expect(error.message).toContain('train-images-idx3-ubyte.gz is gzip-compressed but its data is corrupt or truncated')
  })

  it('rejects image and label counts that differ, naming both files', async () => {
    await writeIdxSet(dir)
    await writeFile(join(dir, 'train-labels-idx1-ubyte'), idxLabels([1, 2, 3]))
    const error = await expectDatasetError(loadDataset(dir))
    expect(error.path).toBe(join(dir, 'train-labels-idx1-ubyte'))
    expect(error.message).toContain('train-labels-idx1-ubyte holds 3 labels but train-images-idx3-ubyte holds 5 images')
  })

  it('rejects a label far beyond the others (a corrupt byte), naming the file and the item', async () => {
    await writeIdxSet(dir, { train: [0, 1, 2, 3, 200, 4, 5, 6, 7, 8, 9], test: null })
    const error = await expectDatasetError(loadDataset(dir))
    expect(error.path).toBe(join(dir, 'train-labels-idx1-ubyte'))
    expect(error.message).toMatch(/item 4 has label 200, which would make 201 classes of which 190 are empty/)
  })

  it('refuses IDX files that are not regular files (a FIFO, /dev/zero) at once, naming them', async () => {
    await writeIdxSet(dir, { test: null })
    await unlink(join(dir, 'train-images-idx3-ubyte'))
    await symlink('/dev/zero', join(dir, 'train-images-idx3-ubyte'))
    const started = Date.now()
    const zero = await expectDatasetError(loadDataset(dir))
    expect(zero.message).toMatch(/train-images-idx3-ubyte: not a regular file/)
    await unlink(join(dir, 'train-images-idx3-ubyte'))
    execFileSync('mkfifo', [join(dir, 'train-images-idx3-ubyte')])
    const fifo = await expectDatasetError(loadDataset(dir))
    expect(fifo.message).toMatch(/not a regular file/)
    expect(Date.now() - started).toBeLessThan(10_000)
  })

  it('rejects non-byte IDX types and bad dimension counts (parseIdx)', () => {
    const floats = Buffer.from([0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0])
    expect(() => parseIdx(floats, '/x/train-labels-idx1-ubyte', 'labels')).toThrow(/holds 32-bit floats; only IDX files of unsigned bytes/)
    expect(() => parseIdx(Buffer.from([0, 0]), '/x/f', 'labels')).toThrow(/too short/)
    expect(() => parseIdx(Buffer.from([0, 0, 8, 3, 0, 0]), '/x/f', 'images')).toThrow(/header needs 16 bytes/)
    const ok = parseIdx(idxLabels([4, 5]), '/x/f', 'labels')
    expect(ok.dims).toEqual([2])
    expect(Array.from(ok.data)).toEqual([4, 5])
  })

  it('keeps train labelled and leaves out t10k images that have no labels file', async () => {
    await writeIdxSet(dir)
    await unlink(join(dir, 't10k-labels-idx1-ubyte'))
    const d = await loadDataset(dir)
    expect(d.report.itemCount).toBe(5)
    expect(d.labels).not.toBeNull()
    expect(reasonFor(d, 't10k-images-idx3-ubyte')).toMatch(/no matching t10k-labels file/)
  })
})

// ---------- small helpers ----------

describe('helpers', () => {
  it('naturalCompare orders numbered names the way people do', () => {
    expect(['img10.png', 'img2.png', 'img1.png'].sort(naturalCompare)).toEqual(['img1.png', 'img2.png', 'img10.png'])
  })

  it('splitCsvLine handles quotes', () => {
    expect(splitCsvLine('"a, b.png", cat')).toEqual(['a, b.png', 'cat'])
    expect(splitCsvLine('"say ""hi"".png",1')).toEqual(['say "hi".png', '1'])
  })
})

// ---------- the real Fashion-MNIST and the default dataset ----------

const FASHION_MNIST = '/usr/share/datasets/fashion-mnist'

describe('default dataset', () => {
  it('defaultDatasetPath points at Fashion-MNIST exactly when it is installed', () => {
    expect(defaultDatasetPath()).toBe(existsSync(join(FASHION_MNIST, 'train-images-idx3-ubyte.gz')) ? FASHION_MNIST : null)
  })

  it.skipIf(!existsSync(join(FASHION_MNIST, 'train-images-idx3-ubyte.gz')))('loads the real Fashion-MNIST', async () => {
    const started = performance.now()
    const d = await loadDefaultDataset()
    const seconds = (performance.now() - started) / 1000
    console.log(`Fashion-MNIST loaded in ${seconds.toFixed(3)} s`)
    expect(d.report.layout).toBe('idx')
    expect(d.report.itemCount).toBe(70000)
    expect([d.width, d.height, d.channels]).toEqual([28, 28, 1])
    expect(d.pixels.length).toBe(70000 * 28 * 28)
    expect(d.split.reduce((s, v) => s + v, 0)).toBe(10000)
    expect(d.split[59999]).toBe(0)
    expect(d.split[60000]).toBe(1)
    expect(d.labels!.every((v) => v >= 0 && v <= 9)).toBe(true)
    expect(d.labels![0]).toBe(9)
    expect(d.classNames[d.labels![0]]).toBe('Ankle boot')
    expect(d.report.classCounts).toEqual(new Array(10).fill(7000))
    // Generous bound: the machine running tests may be busy; typical is well under a second.
    expect(seconds).toBeLessThan(5)
  })
})
