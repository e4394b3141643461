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

/** Labels drawn around an exported figure: one per column (above) and one per row (left). */
export interface FigureLabels {
  columns?: string[]
  rows?: string[]
  /** A line above everything (what the figure is). */
  title?: string
}

const LABEL_FONT_PX = 14
const LABEL_LINE = LABEL_FONT_PX + 8

/**
 * Rows of images tiled into one PNG (scaled up, pixelated), with its column and row labels (class
 * names, interpolation rows, traversal values), downloaded under `fileName`. Every image of a
 * column is drawn at the widest cell's size, so a half-resolution row (the SRVAE's y) lines up.
 */
export async function exportPng(rows: ImagePayload[][], fileName: string, labels: FigureLabels = {}, scale = 4, gap = 2): Promise<void> {
  const cell = rows[0]?.[0]
  if (!cell) return
  const cellWidth = Math.max(...rows.flat().map((image) => image.width)) * scale
  const cellHeight = Math.max(...rows.flat().map((image) => image.height)) * scale
  const columns = Math.max(...rows.map((r) => r.length))
  const measure = document.createElement('canvas').getContext('2d') as CanvasRenderingContext2D
  measure.font = `${LABEL_FONT_PX}px sans-serif`
  const left = labels.rows?.length ? Math.ceil(Math.max(...labels.rows.map((t) => measure.measureText(t).width))) + 12 : 0
  const top = (labels.title ? LABEL_LINE : 0) + (labels.columns?.length ? LABEL_LINE : 0)
  const canvas = document.createElement('canvas')
  canvas.width = left + columns * (cellWidth + gap) + gap
  canvas.height = top + rows.length * (cellHeight + gap) + gap
  const context = canvas.getContext('2d') as CanvasRenderingContext2D
  context.fillStyle = '#ffffff'
  context.fillRect(0, 0, canvas.width, canvas.height)
  context.fillStyle = '#222222'
  context.font = `${LABEL_FONT_PX}px sans-serif`
  context.textBaseline = 'middle'
  if (labels.title) context.fillText(labels.title, gap, LABEL_LINE / 2)
  context.textAlign = 'center'
  labels.columns?.forEach((text, c) => {
    const x = left + gap + c * (cellWidth + gap) + cellWidth / 2
    context.fillText(fitText(context, text, cellWidth + gap), x, top - LABEL_LINE / 2)
  })
  context.textAlign = 'right'
  labels.rows?.forEach((text, r) => context.fillText(text, left - 6, top + gap + r * (cellHeight + gap) + cellHeight / 2))
  context.imageSmoothingEnabled = false
  const tile = document.createElement('canvas')
  rows.forEach((row, r) =>
    row.forEach((image, c) => {
      tile.width = image.width
      tile.height = image.height
      ;(tile.getContext('2d') as CanvasRenderingContext2D).putImageData(toImageData(image), 0, 0)
      context.drawImage(tile, left + gap + c * (cellWidth + gap), top + gap + r * (cellHeight + gap), cellWidth, cellHeight)
    })
  )
  const blob = await new Promise<Blob | null>((resolve) => canvas.toBlob(resolve, 'image/png'))
  if (blob) downloadBlob(blob, fileName)
}

/** `text`, shortened with an ellipsis to fit `width` pixels in the context's font. */
function fitText(context: CanvasRenderingContext2D, text: string, width: number): string {
  if (context.measureText(text).width <= width) return text
  let end = text.length
  while (end > 1 && context.measureText(`${text.slice(0, end)}…`).width > width) end--
  return `${text.slice(0, end)}…`
}

/** Saves a file the page made (the desktop app asks where, a browser saves to Downloads). */
export function downloadBlob(blob: Blob, fileName: string): void {
  const link = document.createElement('a')
  link.href = URL.createObjectURL(blob)
  link.download = fileName
  link.click()
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000)
}
