// The in-memory form of a loaded dataset, shared by every loader (image folders, IDX files, the
// generated shapes set) and by the training and projection code.
//
// Pixels stay uint8 (HWC order, row-major, item after item): a 60k x 28 x 28 set is 47 MB this way,
// and 188 MB as float32. Models read batches and scale them to [0, 1] one batch at a time.

export type Split = 'train' | 'heldout'

// What a load found (the report the window and the CLI show) is part of the contract.
import type { LoadReport, SkippedFile } from '../../common/contract'

export type { LoadReport, SkippedFile }

export interface ImageDataset {
  name: string
  width: number
  height: number
  channels: 1 | 3
  /** n * height * width * channels bytes, HWC per item. */
  pixels: Uint8Array
  /** Class index per item, or null when unlabelled. */
  labels: Int32Array | null
  classNames: string[]
  /** 0 = training item, 1 = held-out item. */
  split: Uint8Array
  /** File name or other identifier per item, for the UI ("shirt/0042.png", "train #517"). */
  itemNames: string[]
  report: LoadReport
}

export interface LoadProgress {
  done: number
  total: number
  /** Seconds, estimated from the rate so far; null until it can be estimated. */
  etaSeconds: number | null
}

export type ProgressCallback = (progress: LoadProgress) => void
