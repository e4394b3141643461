// The load cache of image folders: a reopen of an unchanged folder is read back, byte for byte,
// and anything that could make the cached copy wrong (a changed, added or deleted file, other
// options, a damaged cache file) leads to a full decode instead.

import { mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, unlink, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import sharp from 'sharp'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { cacheFilePath, cacheKey, pruneCache } from '../../../../electron/engine/datasets/cache'
import { type ImageDataset, loadDataset, type LoadOptions, writeShapesFolder } from '../../../../electron/engine/datasets/index'

let dir: string
let data: string
let cacheDir: string

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lc-datasets-cache-'))
  data = join(dir, 'data')
  cacheDir = join(dir, 'cache')
})

afterEach(async () => {
  await rm(dir, { recursive: true, force: true })
})

const fromCache = (dataset: ImageDataset): boolean => dataset.report.notes.some((note) => note.includes('loaded from cache'))

async function cacheFiles(): Promise<string[]> {
  return (await readdir(cacheDir).catch(() => [] as string[])).filter((name) => name.endsWith('.lcds'))
}

async function rgbPng(path: string, seed: number, size = 20): Promise<void> {
  const raw = Buffer.alloc(size * size * 3)
  for (let i = 0; i < raw.length; i++) raw[i] = (i * 7 + seed * 31) & 255
  await mkdir(join(path, '..'), { recursive: true })
  await writeFile(
    path,
    await sharp(raw, { raw: { width: size, height: size, channels: 3 } })
      .png()
      .toBuffer()
  )
}

function expectSameData(a: ImageDataset, b: ImageDataset): void {
  expect(Buffer.from(b.pixels).equals(Buffer.from(a.pixels))).toBe(true)
  expect(b.pixels.length).toBe(a.pixels.length)
  expect(b.labels).toEqual(a.labels)
  expect(Array.from(b.split)).toEqual(Array.from(a.split))
  expect(b.itemNames).toEqual(a.itemNames)
  expect(b.classNames).toEqual(a.classNames)
  expect([b.name, b.width, b.height, b.channels]).toEqual([a.name, a.width, a.height, a.channels])
}

describe('load cache of image folders', () => {
  it('reopens an unchanged folder from the cache with identical pixels, labels, split and names', async () => {
    await writeShapesFolder(data, { countPerClass: 40, size: 16, seed: 3 })
    await writeFile(join(data, 'notes.txt'), 'not an image') // a skipped file must be reported the same way
    const options: LoadOptions = { cacheDir, heldOutFraction: 0.25, seed: 5 }
    const first = await loadDataset(data, options)
    expect(fromCache(first)).toBe(false)
    expect(await cacheFiles()).toHaveLength(1)

    const progress: number[] = []
    const second = await loadDataset(data, options, (p) => progress.push(p.done))
    expect(fromCache(second)).toBe(true)
    expectSameData(first, second)
    expect(second.labels).toBeInstanceOf(Int32Array)
    expect(second.report.skipped).toEqual(first.report.skipped)
    expect(second.report.classCounts).toEqual(first.report.classCounts)
    expect(second.report.notes.filter((n) => !n.includes('loaded from cache'))).toEqual(first.report.notes)
    expect(progress.at(-1)).toBe(second.itemNames.length)

    // Without a cacheDir nothing is read or written.
    const uncached = await loadDataset(data, { heldOutFraction: 0.25, seed: 5 })
    expect(fromCache(uncached)).toBe(false)
    expectSameData(first, uncached)
  })

  it('caches an unlabelled flat folder too', async () => {
    for (let i = 0; i < 6; i++) await rgbPng(join(data, `img${i}.png`), i)
    const first = await loadDataset(data, { cacheDir })
    const second = await loadDataset(data, { cacheDir })
    expect(first.labels).toBeNull()
    expect(fromCache(second)).toBe(true)
    expect(second.labels).toBeNull()
    expectSameData(first, second)
  })

  it('decodes again when a file changes, and then caches the new content', async () => {
    await writeShapesFolder(data, { countPerClass: 20, size: 16, seed: 1 })
    const first = await loadDataset(data, { cacheDir })
    const name = first.itemNames[0]
    const path = join(data, name)
    const before = await stat(path)
    // New content with a later modification time, as an editor would leave it.
    const bytes = await readFile(path)
    const recoloured = await sharp(bytes).negate({ alpha: false }).toColourspace('b-w').png().toBuffer()
    await writeFile(path, recoloured)
    const later = new Date(before.mtimeMs + 5000)
    await utimes(path, later, later)

    const second = await loadDataset(data, { cacheDir })
    expect(fromCache(second)).toBe(false)
    expect(second.report.notes.some((n) => n.includes('added, removed or changed'))).toBe(true)
    const size = first.width * first.height * first.channels
    expect(Buffer.from(second.pixels.subarray(0, size)).equals(Buffer.from(first.pixels.subarray(0, size)))).toBe(false)

    const third = await loadDataset(data, { cacheDir })
    expect(fromCache(third)).toBe(true)
    expectSameData(second, third)
    expect(await cacheFiles()).toHaveLength(1) // rewritten in place, not a second entry
  })

  it('notices a file whose only change is its modification time', async () => {
    await writeShapesFolder(data, { countPerClass: 12, size: 16, seed: 1 })
    const first = await loadDataset(data, { cacheDir })
    const path = join(data, first.itemNames[3])
    const later = new Date((await stat(path)).mtimeMs + 60_000)
    await utimes(path, later, later)
    expect(fromCache(await loadDataset(data, { cacheDir }))).toBe(false)
  })

  it('decodes again when a file is added', async () => {
    await writeShapesFolder(data, { countPerClass: 20, size: 16, seed: 1 })
    const first = await loadDataset(data, { cacheDir })
    const [className] = first.classNames
    await rgbPng(join(data, className, 'zz-added.png'), 9, 16)
    const second = await loadDataset(data, { cacheDir })
    expect(fromCache(second)).toBe(false)
    expect(second.itemNames).toContain(`${className}/zz-added.png`)
    expect(second.itemNames).toHaveLength(first.itemNames.length + 1)
  })

  it('decodes again when a file is deleted', async () => {
    await writeShapesFolder(data, { countPerClass: 20, size: 16, seed: 1 })
    const first = await loadDataset(data, { cacheDir })
    await unlink(join(data, first.itemNames[5]))
    const second = await loadDataset(data, { cacheDir })
    expect(fromCache(second)).toBe(false)
    expect(second.itemNames).not.toContain(first.itemNames[5])
    expect(second.itemNames).toHaveLength(first.itemNames.length - 1)
  })

  it('decodes again when a non-image file (labels.csv) changes', async () => {
    for (let i = 0; i < 4; i++) await rgbPng(join(data, `img${i}.png`), i)
    await writeFile(join(data, 'labels.csv'), 'img0.png,a\nimg1.png,a\nimg2.png,b\nimg3.png,b\n')
    const first = await loadDataset(data, { cacheDir, heldOutFraction: 0 })
    await writeFile(join(data, 'labels.csv'), 'img0.png,a\nimg1.png,b\nimg2.png,b\nimg3.png,b\n')
    const second = await loadDataset(data, { cacheDir, heldOutFraction: 0 })
    expect(fromCache(second)).toBe(false)
    expect(first.report.classCounts).toEqual([2, 2])
    expect(second.report.classCounts).toEqual([1, 3])
  })

  it('falls back to a full load when the cache file is truncated, corrupt or not a cache file', async () => {
    await writeShapesFolder(data, { countPerClass: 20, size: 16, seed: 2 })
    const first = await loadDataset(data, { cacheDir })
    const [name] = await cacheFiles()
    const file = join(cacheDir, name)
    const length = (await stat(file)).size

    await truncate(file, length - 100)
    const afterTruncate = await loadDataset(data, { cacheDir })
    expect(fromCache(afterTruncate)).toBe(false)
    expect(afterTruncate.report.notes.some((n) => n.includes('load cache could not be used'))).toBe(true)
    expectSameData(first, afterTruncate)
    // The full load rewrote a good entry (its size may differ by a byte or two: the header holds the load time).
    expect(Math.abs((await stat(file)).size - length)).toBeLessThan(16)
    expect(fromCache(await loadDataset(data, { cacheDir }))).toBe(true)

    // One flipped pixel byte keeps every length right; only the checksum catches it.
    const bytes = await readFile(file)
    bytes[Math.floor(bytes.length / 2)] ^= 0xff
    await writeFile(file, bytes)
    const afterFlip = await loadDataset(data, { cacheDir })
    expect(fromCache(afterFlip)).toBe(false)
    expectSameData(first, afterFlip)

    for (const garbage of [
      Buffer.alloc(0),
      Buffer.from('LCDSCAC1'),
      Buffer.from('LCDSCAC1\xff\xff\xff\x7f{', 'latin1'),
      Buffer.from('hello world, not a cache')
    ]) {
      await writeFile(file, garbage)
      const loaded = await loadDataset(data, { cacheDir })
      expect(fromCache(loaded)).toBe(false)
      expectSameData(first, loaded)
    }
  })

  it('keeps separate entries for options that change the result', async () => {
    await writeShapesFolder(data, { countPerClass: 30, size: 16, seed: 4 })
    const base = await loadDataset(data, { cacheDir })
    const variants: LoadOptions[] = [{ size: 8 }, { fit: 'contain' }, { heldOutFraction: 0.3 }, { seed: 9 }]
    for (const variant of variants) {
      const loaded = await loadDataset(data, { cacheDir, ...variant })
      expect(fromCache(loaded), JSON.stringify(variant)).toBe(false)
    }
    expect(await cacheFiles()).toHaveLength(1 + variants.length)
    // Each reopens from its own entry, with its own result.
    const small = await loadDataset(data, { cacheDir, size: 8 })
    expect(fromCache(small)).toBe(true)
    expect(small.width).toBe(8)
    const reseeded = await loadDataset(data, { cacheDir, seed: 9 })
    expect(fromCache(reseeded)).toBe(true)
    expect(Array.from(reseeded.split)).not.toEqual(Array.from(base.split))
    // Spelling out a default is the same load, so it shares the entry.
    const spelled = await loadDataset(data, { cacheDir, fit: 'cover', seed: 0, heldOutFraction: 0.1, concurrency: 1 })
    expect(fromCache(spelled)).toBe(true)
    expectSameData(base, spelled)
  })

  it('keeps separate entries for different folders with the same files', async () => {
    await writeShapesFolder(join(dir, 'one'), { countPerClass: 10, size: 16, seed: 4 })
    await writeShapesFolder(join(dir, 'two'), { countPerClass: 10, size: 16, seed: 5 })
    await loadDataset(join(dir, 'one'), { cacheDir })
    const two = await loadDataset(join(dir, 'two'), { cacheDir })
    expect(fromCache(two)).toBe(false)
    expect(two.report.source).toBe(join(dir, 'two'))
  })

  it('still loads when the cache folder cannot be written, and says so', async () => {
    await writeShapesFolder(data, { countPerClass: 10, size: 16, seed: 4 })
    const blocker = join(dir, 'blocker')
    await writeFile(blocker, 'a file where the cache folder should be')
    const loaded = await loadDataset(data, { cacheDir: join(blocker, 'cache') })
    expect(loaded.itemNames).toHaveLength(60)
    expect(loaded.report.notes.some((n) => n.includes('Could not write the load cache'))).toBe(true)
  })

  it('does not cache IDX folders', async () => {
    const header = Buffer.alloc(16)
    header.writeUInt32BE(2051, 0)
    header.writeUInt32BE(3, 4)
    header.writeUInt32BE(4, 8)
    header.writeUInt32BE(4, 12)
    await mkdir(data, { recursive: true })
    await writeFile(join(data, 'train-images-idx3-ubyte'), Buffer.concat([header, Buffer.alloc(48, 7)]))
    await loadDataset(data, { cacheDir })
    expect(await cacheFiles()).toHaveLength(0)
  })

  it('prunes the least recently used entries beyond the size limit, and stale temp files', async () => {
    await writeShapesFolder(data, { countPerClass: 5, size: 16, seed: 4 })
    const entry = (seed: number): string => cacheFilePath(cacheDir, cacheKey(data, { seed }))
    const nameOf = (path: string): string => basename(path)
    for (const seed of [1, 2, 3]) await loadDataset(data, { cacheDir, seed })
    expect(await cacheFiles()).toHaveLength(3)
    const now = Date.now() / 1000
    // Last used: seed 1 just now, seed 3 before it, seed 2 longest ago.
    await utimes(entry(1), now - 10, now - 10)
    await utimes(entry(3), now - 200, now - 200)
    await utimes(entry(2), now - 300, now - 300)
    const staleTemp = `${entry(1)}.999-dead.tmp`
    const freshTemp = `${entry(1)}.999-live.tmp`
    await writeFile(staleTemp, 'left by a crash')
    await utimes(staleTemp, now - 3 * 3600, now - 3 * 3600)
    await writeFile(freshTemp, 'being written by another load')
    const entryBytes = (await stat(entry(1))).size

    // Room for two entries; seed 2 is the oldest but is the one to keep, so seed 3 goes.
    await pruneCache(cacheDir, entry(2), 2 * entryBytes + 100)
    expect((await cacheFiles()).sort()).toEqual([nameOf(entry(1)), nameOf(entry(2))].sort())
    const left = await readdir(cacheDir)
    expect(left).not.toContain(nameOf(staleTemp))
    expect(left).toContain(nameOf(freshTemp))

    // A cache hit counts as a use: it protects the entry from the next prune.
    expect(fromCache(await loadDataset(data, { cacheDir, seed: 2 }))).toBe(true)
    await pruneCache(cacheDir, entry(3), entryBytes + 100)
    expect(await cacheFiles()).toEqual([nameOf(entry(2))])
  })

  it('rejects an empty cacheDir', async () => {
    await expect(loadDataset(dir, { cacheDir: '' })).rejects.toThrow(/cacheDir/)
  })
})
