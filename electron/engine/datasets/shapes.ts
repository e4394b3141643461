// A small labelled synthetic dataset: simple shapes at random positions, scales and brightness.
// It needs no download, so the app has something to train on out of the box, and tests get a
// dataset whose labels are known exactly.

import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import sharp from 'sharp'
import { assignHeldOutSplit, DEFAULT_HELD_OUT_FRACTION, mapPool, splitNote } from './common'
import { seededRandom } from '../../../models/random'
import type { ImageDataset } from './types'

/** Alphabetical, so a folder written by writeShapesFolder loads back with the same class indices. */
export const SHAPE_CLASSES = ['bar', 'circle', 'cross', 'ring', 'square', 'triangle'] as const
export type ShapeClass = (typeof SHAPE_CLASSES)[number]

export interface ShapesOptions {
  count: number
  /** Side in pixels; default 28 (like MNIST). */
  size?: number
  seed?: number
  heldOutFraction?: number
}

/** Whether point (u, v), in units of the shape's radius around its centre, is inside the shape. */
function inside(shape: ShapeClass, u: number, v: number): boolean {
  const au = Math.abs(u)
  const av = Math.abs(v)
  switch (shape) {
    case 'circle':
      return u * u + v * v <= 1
    case 'ring': {
      const r2 = u * u + v * v
      return r2 <= 1 && r2 >= 0.55 * 0.55
    }
    case 'square':
      return au <= 0.8 && av <= 0.8
    case 'triangle':
      // Apex up: the half-width grows from 0 at v = -0.85 to 0.95 at v = 0.85.
      return v >= -0.85 && v <= 0.85 && au <= ((v + 0.85) / 1.7) * 0.95
    case 'cross':
      return (au <= 0.24 && av <= 1) || (av <= 0.24 && au <= 1)
    case 'bar':
      return au <= 1.1 && av <= 0.28
  }
}

/** 4x4 supersampling: enough anti-aliasing that small shapes keep their outline at 28 px. */
const SUBSAMPLES = 4

function drawShape(out: Uint8Array, offset: number, size: number, shape: ShapeClass, random: () => number): void {
  const radius = size * (0.2 + random() * 0.12)
  // Keep the whole shape in the frame: the widest shape (bar) reaches 1.1 radii from its centre.
  const margin = radius * 1.15
  const cx = margin + random() * Math.max(0, size - 2 * margin)
  const cy = margin + random() * Math.max(0, size - 2 * margin)
  const brightness = 140 + random() * 115
  const step = 1 / SUBSAMPLES
  const inverseRadius = 1 / radius
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let hits = 0
      for (let sy = 0; sy < SUBSAMPLES; sy++) {
        const v = (y + (sy + 0.5) * step - cy) * inverseRadius
        for (let sx = 0; sx < SUBSAMPLES; sx++) {
          const u = (x + (sx + 0.5) * step - cx) * inverseRadius
          if (inside(shape, u, v)) hits++
        }
      }
      out[offset + y * size + x] = Math.round((brightness * hits) / (SUBSAMPLES * SUBSAMPLES))
    }
  }
}

/** Item i has class i mod 6, so classes are balanced; everything else comes from the seed. */
export function generateShapes(options: ShapesOptions): ImageDataset {
  const started = performance.now()
  const { count } = options
  const size = options.size ?? 28
  const seed = options.seed ?? 0
  const heldOutFraction = options.heldOutFraction ?? DEFAULT_HELD_OUT_FRACTION
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`count must be a positive whole number, got ${count}`)
  if (!Number.isInteger(size) || size < 8 || size > 512) throw new RangeError(`size must be a whole number from 8 to 512, got ${size}`)

  const random = seededRandom(seed)
  const pixels = new Uint8Array(count * size * size)
  const labels = new Int32Array(count)
  const itemNames = new Array<string>(count)
  const classCounts = new Array<number>(SHAPE_CLASSES.length).fill(0)
  for (let i = 0; i < count; i++) {
    const label = i % SHAPE_CLASSES.length
    labels[i] = label
    drawShape(pixels, i * size * size, size, SHAPE_CLASSES[label], random)
    itemNames[i] = `${SHAPE_CLASSES[label]}/${String(classCounts[label]).padStart(4, '0')}.png`
    classCounts[label]++
  }
  const split = assignHeldOutSplit(count, labels, heldOutFraction, seed)
  return {
    name: 'shapes',
    width: size,
    height: size,
    channels: 1,
    pixels,
    labels,
    classNames: [...SHAPE_CLASSES],
    split,
    itemNames,
    report: {
      layout: 'generated',
      source: `generated shapes (seed ${seed})`,
      itemCount: count,
      classCounts,
      sourceSizes: `${size}x${size}`,
      width: size,
      height: size,
      channels: 1,
      skipped: [],
      notes: [
        `Synthetic dataset: ${SHAPE_CLASSES.length} shapes (${SHAPE_CLASSES.join(', ')}) at random positions, scales and brightness.`,
        splitNote(split, heldOutFraction, seed, true)
      ],
      seconds: (performance.now() - started) / 1000
    }
  }
}

export interface ShapesFolderOptions {
  countPerClass: number
  size?: number
  seed?: number
}

/**
 * Writes a shapes dataset as grayscale PNGs in class subfolders (dir/<class>/0000.png, ...).
 * Returns the generated dataset; its itemNames are the files' paths relative to `dir`.
 */
export async function writeShapesFolder(dir: string, options: ShapesFolderOptions): Promise<ImageDataset> {
  const dataset = generateShapes({
    count: options.countPerClass * SHAPE_CLASSES.length,
    size: options.size,
    seed: options.seed
  })
  await Promise.all(SHAPE_CLASSES.map((name) => mkdir(join(dir, name), { recursive: true })))
  const { width, height } = dataset
  const itemBytes = width * height
  const indices = Array.from({ length: dataset.report.itemCount }, (_, i) => i)
  await mapPool(indices, 8, async (i) => {
    const png = await sharp(dataset.pixels.subarray(i * itemBytes, (i + 1) * itemBytes), {
      raw: { width, height, channels: 1 }
    })
      // Without this sharp writes single-channel input as an RGB PNG.
      .toColourspace('b-w')
      .png()
      .toBuffer()
    await writeFile(join(dir, dataset.itemNames[i]), png)
  })
  return dataset
}
