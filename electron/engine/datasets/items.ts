// One item of a loaded dataset, as the window shows it and as a model reads it.
import * as tf from '@tensorflow/tfjs'
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

/** The item as a batch of one in [0, 1], as the models read it (the caller disposes it). */
export function itemTensor(dataset: ImageDataset, index: number): tf.Tensor4D {
  const { width, height, channels } = dataset
  const k = width * height * channels
  return tf
    .tensor4d(dataset.pixels.subarray(index * k, (index + 1) * k), [1, height, width, channels])
    .toFloat()
    .div(255) as tf.Tensor4D
}
