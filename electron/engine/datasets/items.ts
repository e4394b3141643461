// Items of a loaded dataset, as the window shows them and as a model reads them.
import * as tf from '@tensorflow/tfjs'
import type { ImageShape } from '../../../models/index'
import { bytesToBase64, type ImagePayload } from '../../common/contract'
import type { ImageDataset } from './types'

/** `index` when the dataset has that item; else an error naming the count. */
export function requireItem(dataset: ImageDataset, index: number): number {
  const count = dataset.split.length
  if (!Number.isInteger(index) || index < 0 || index >= count) throw new Error(`there is no item ${index}; the dataset has ${count}`)
  return index
}

/** The item's pixels as the window draws them. */
export function itemImage(dataset: ImageDataset, index: number): ImagePayload {
  const { width, height, channels, pixels } = dataset
  const k = width * height * channels
  return { width, height, channels, base64: bytesToBase64(pixels.subarray(index * k, (index + 1) * k)) }
}

/**
 * Items `from` to `from + count` of `pixels` (n * h * w * c bytes in item order, the datasets'
 * layout) as a batch in [0, 1], as the models read it; the caller disposes it.
 */
export function pixelRangeTensor(pixels: Uint8Array, shape: ImageShape, from: number, count: number): tf.Tensor4D {
  const { height, width, channels } = shape
  const k = height * width * channels
  return tf.tidy(
    () =>
      tf
        .tensor4d(pixels.subarray(from * k, (from + count) * k), [count, height, width, channels])
        .toFloat()
        .div(255) as tf.Tensor4D
  )
}

/** One item as a batch of one (the caller disposes it). */
export function itemTensor(dataset: ImageDataset, index: number): tf.Tensor4D {
  return pixelRangeTensor(dataset.pixels, dataset, index, 1)
}

/** Any items, in the order given, as one batch (the caller disposes it). */
export function itemsTensor(dataset: ImageDataset, items: readonly number[]): tf.Tensor4D {
  const k = dataset.width * dataset.height * dataset.channels
  const pixels = new Uint8Array(items.length * k)
  items.forEach((index, j) => pixels.set(dataset.pixels.subarray(index * k, (index + 1) * k), j * k))
  return pixelRangeTensor(pixels, dataset, 0, items.length)
}
