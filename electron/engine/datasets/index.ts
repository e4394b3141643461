// Entry point of the dataset loaders: one call that looks at a folder and picks the right loader.

import { existsSync } from 'node:fs'
import { readdir, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { DEFAULT_HELD_OUT_FRACTION, DEFAULT_SEED, type LoadOptions, validateOptions } from './common'
import { DatasetError, describeFsError } from './errors'
import { loadImageFolder } from './folder'
import { findIdxFiles, loadIdxFolder } from './idx'
import { generateShapes } from './shapes'
import type { ImageDataset, ProgressCallback } from './types'

export type { FitPolicy, LoadOptions } from './common'
export { DatasetError } from './errors'
export { FASHION_MNIST_CLASSES, parseIdx, readIdxFile } from './idx'
export { generateShapes, SHAPE_CLASSES, writeShapesFolder } from './shapes'
export type { ShapesFolderOptions, ShapesOptions } from './shapes'
export type * from './types'

export const FASHION_MNIST_PATH = '/usr/share/datasets/fashion-mnist'
export const DEFAULT_SHAPES_COUNT = 6000

/**
 * Loads the dataset in folder `path`: IDX files (MNIST format) when the folder has them, else
 * image files (class subfolders, flat, or flat with labels.csv). Throws DatasetError when the
 * folder cannot be used; files that cannot be used are skipped and listed in report.skipped.
 */
export async function loadDataset(path: string, options: LoadOptions = {}, onProgress?: ProgressCallback): Promise<ImageDataset> {
  validateOptions(options)
  const dir = resolve(path)
  let names: string[]
  try {
    const info = await stat(dir)
    if (!info.isDirectory()) {
      throw new DatasetError(dir, `${dir} is a file; choose the folder that holds the dataset instead.`)
    }
    names = await readdir(dir)
  } catch (error) {
    if (error instanceof DatasetError) throw error
    throw new DatasetError(dir, `Cannot open the dataset folder ${dir}: ${describeFsError(error, 'folder')}.`, {
      cause: error
    })
  }
  const idxFiles = findIdxFiles(dir, names)
  if (idxFiles) return loadIdxFolder(dir, idxFiles, options, onProgress)
  return loadImageFolder(dir, options, onProgress)
}

/** Fashion-MNIST's folder when it is installed (the app's default dataset), else null. */
export function defaultDatasetPath(): string | null {
  const hasTrainImages = ['train-images-idx3-ubyte.gz', 'train-images-idx3-ubyte'].some((name) => existsSync(join(FASHION_MNIST_PATH, name)))
  return hasTrainImages ? FASHION_MNIST_PATH : null
}

/** Fashion-MNIST when installed; otherwise the generated shapes, so there is always something to train on. */
export async function loadDefaultDataset(onProgress?: ProgressCallback): Promise<ImageDataset> {
  const path = defaultDatasetPath()
  if (path) return loadDataset(path, {}, onProgress)
  onProgress?.({ done: 0, total: DEFAULT_SHAPES_COUNT, etaSeconds: null })
  const dataset = generateShapes({
    count: DEFAULT_SHAPES_COUNT,
    size: 28,
    seed: DEFAULT_SEED,
    heldOutFraction: DEFAULT_HELD_OUT_FRACTION
  })
  dataset.report.notes.unshift(`Fashion-MNIST is not installed at ${FASHION_MNIST_PATH}; using generated shapes instead.`)
  onProgress?.({ done: DEFAULT_SHAPES_COUNT, total: DEFAULT_SHAPES_COUNT, etaSeconds: 0 })
  return dataset
}
