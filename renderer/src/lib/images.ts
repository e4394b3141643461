// Pixel helpers shared by the image views and the PNG export.
import { base64ToBytes, type ImagePayload } from '../../../electron/common/contract'

export function toImageData(image: ImagePayload): ImageData {
  return pixelsToImageData(base64ToBytes(image.base64), 0, image.width, image.height, image.channels)
}

/** HWC grey or RGB bytes starting at `offset` (e.g. one cell of the thumbnail atlas) as RGBA. */
export function pixelsToImageData(bytes: Uint8Array, offset: number, width: number, height: number, channels: number): ImageData {
  const rgba = new ImageData(width, height)
  for (let i = 0; i < width * height; i++) {
    const r = bytes[offset + i * channels]
    rgba.data[i * 4] = r
    rgba.data[i * 4 + 1] = channels === 1 ? r : bytes[offset + i * channels + 1]
    rgba.data[i * 4 + 2] = channels === 1 ? r : bytes[offset + i * channels + 2]
    rgba.data[i * 4 + 3] = 255
  }
  return rgba
}

/** Rows of images tiled into one PNG (scaled up, pixelated), downloaded under `fileName`. */
export async function exportPng(rows: ImagePayload[][], fileName: string, scale = 4, gap = 2): Promise<void> {
  const cell = rows[0]?.[0]
  if (!cell) return
  const columns = Math.max(...rows.map((r) => r.length))
  const canvas = document.createElement('canvas')
  canvas.width = columns * (cell.width * scale + gap) + gap
  canvas.height = rows.length * (cell.height * scale + gap) + gap
  const context = canvas.getContext('2d') as CanvasRenderingContext2D
  context.fillStyle = '#ffffff'
  context.fillRect(0, 0, canvas.width, canvas.height)
  context.imageSmoothingEnabled = false
  const tile = document.createElement('canvas')
  rows.forEach((row, r) =>
    row.forEach((image, c) => {
      tile.width = image.width
      tile.height = image.height
      ;(tile.getContext('2d') as CanvasRenderingContext2D).putImageData(toImageData(image), 0, 0)
      context.drawImage(tile, gap + c * (cell.width * scale + gap), gap + r * (cell.height * scale + gap), image.width * scale, image.height * scale)
    })
  )
  const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, 'image/png'))
  if (!blob) return
  const link = document.createElement('a')
  link.href = URL.createObjectURL(blob)
  link.download = fileName
  link.click()
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000)
}
