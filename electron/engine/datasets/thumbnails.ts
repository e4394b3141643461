// Every item's thumbnail in one atlas, for the map's hover previews.
import { bytesToBase64, type ThumbnailAtlas } from '../../common/contract'
import type { ImageDataset } from './types'

/** Most bytes an atlas may hold before thumbnails are downsampled (2x, 4x...). */
const ATLAS_BUDGET_BYTES = 24 * 2 ** 20

/** Every item's thumbnail, downsampled by striding when the whole set would not fit the budget. */
export function thumbnailAtlas(dataset: ImageDataset): ThumbnailAtlas {
  const { width, height, channels, pixels } = dataset
  const n = dataset.split.length
  let downsample = 1
  while (n * Math.ceil(width / downsample) * Math.ceil(height / downsample) * channels > ATLAS_BUDGET_BYTES && downsample < 16) downsample *= 2
  if (downsample === 1) return { count: n, cellWidth: width, cellHeight: height, channels, downsample, base64: bytesToBase64(pixels) }
  const cellWidth = Math.ceil(width / downsample)
  const cellHeight = Math.ceil(height / downsample)
  const out = new Uint8Array(n * cellWidth * cellHeight * channels)
  let o = 0
  for (let i = 0; i < n; i++) {
    const base = i * width * height * channels
    for (let y = 0; y < height; y += downsample)
      for (let x = 0; x < width; x += downsample) for (let c = 0; c < channels; c++) out[o++] = pixels[base + (y * width + x) * channels + c]
  }
  return { count: n, cellWidth, cellHeight, channels, downsample, base64: bytesToBase64(out) }
}
