// Shared by the end-to-end specs: a browser-mode host on a fresh data folder, and pixel checks.
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Page } from '@playwright/test'

export interface Host {
  url: string
  token: string
  port: number
  close(): Promise<void>
}

/** Starts the built host (out/main/host.js: `npm run build` first) with its own data folder. */
export async function startTestHost(): Promise<Host> {
  const dataDir = await mkdtemp(join(tmpdir(), 'cartographer-e2e-data-'))
  const { startHost } = require(join(__dirname, '../../out/main/host.js')) as { startHost(o: object): Promise<Host> }
  return startHost({ env: { CARTOGRAPHER_DATA_DIR: dataDir, CARTOGRAPHER_BACKEND: process.env.CARTOGRAPHER_BACKEND ?? 'auto' } })
}

/** Fraction of pixels of a canvas that differ from its top-left pixel (the background). */
export async function nonBackgroundFraction(page: Page, selector: string): Promise<number> {
  return page.locator(selector).evaluate((element) => {
    const source = element as HTMLCanvasElement
    const copy = document.createElement('canvas')
    copy.width = source.width
    copy.height = source.height
    const context = copy.getContext('2d') as CanvasRenderingContext2D
    context.drawImage(source, 0, 0)
    const { data } = context.getImageData(0, 0, copy.width, copy.height)
    let differing = 0
    for (let i = 0; i < data.length; i += 4) {
      if (Math.abs(data[i] - data[0]) + Math.abs(data[i + 1] - data[1]) + Math.abs(data[i + 2] - data[2]) > 30) differing++
    }
    return differing / (data.length / 4)
  })
}

/** Pixel statistics of a 2D canvas: mean and standard deviation of the red channel. */
export async function canvasStats(page: Page, selector: string): Promise<{ mean: number; std: number; width: number }> {
  return page.locator(selector).evaluate((element) => {
    const canvas = element as HTMLCanvasElement
    const { data } = (canvas.getContext('2d') as CanvasRenderingContext2D).getImageData(0, 0, canvas.width, canvas.height)
    let sum = 0
    let squares = 0
    const n = data.length / 4
    for (let i = 0; i < data.length; i += 4) {
      sum += data[i]
      squares += data[i] * data[i]
    }
    const mean = sum / n
    return { mean, std: Math.sqrt(Math.max(0, squares / n - mean * mean)), width: canvas.width }
  })
}

/** Screen position (page coordinates) of item `index` on the map of `space`. */
export async function pointOnPage(page: Page, space: string, index: number): Promise<{ x: number; y: number }> {
  const local = await page.evaluate(
    ([s, i]) => {
      const maps = (window as unknown as { cartographerMaps: Record<string, { screenPosition(i: number): { x: number; y: number } | null }> }).cartographerMaps
      return maps[s].screenPosition(i)
    },
    [space, index] as const
  )
  if (!local) throw new Error(`item ${index} is off screen on map ${space}`)
  const box = await page.getByTestId(`map-${space}`).locator('canvas.scatter-canvas').boundingBox()
  if (!box) throw new Error(`no canvas for map ${space}`)
  if (local.x < 0 || local.y < 0 || local.x > box.width || local.y > box.height) throw new Error(`item ${index} is outside the ${space} map's canvas`)
  return { x: box.x + local.x, y: box.y + local.y }
}

/**
 * The first item from `from` on whose drawn position no other point lies within `clearance` px
 * (else the most isolated one),
 * so that a click there can only pick that item.
 */
export async function isolatedItem(page: Page, space: string, from: number, exclude: number[] = [], clearance = 6): Promise<number> {
  const index = await page.evaluate(
    ([s, start, gap, excluded]) => {
      const map = (
        window as unknown as {
          cartographerMaps: Record<string, { screenPosition(i: number): { x: number; y: number } | null; count: number; canvas: HTMLCanvasElement }>
        }
      ).cartographerMaps[s]
      const points = Array.from({ length: map.count }, (_, i) => map.screenPosition(i))
      const margin = 10
      // Prefer the first point from `start` with `gap` px clear around it; else the most isolated
      // one, as long as it stands 2 px clear (a click lands within 0.71 px of where it is aimed).
      let best = -1
      let bestGap = 2
      for (let k = 0; k < map.count; k++) {
        const i = (start + k) % map.count
        if (excluded.includes(i)) continue
        const p = points[i]
        if (!p || p.x < margin || p.y < margin || p.x > map.canvas.clientWidth - margin || p.y > map.canvas.clientHeight - margin) continue
        let nearest = Infinity
        points.forEach((q, j) => {
          if (j !== i && q) nearest = Math.min(nearest, Math.hypot(q.x - p.x, q.y - p.y))
        })
        if (nearest > gap) return i
        if (nearest > bestGap) {
          best = i
          bestGap = nearest
        }
      }
      return best
    },
    [space, from, clearance, exclude] as const
  )
  if (index < 0) throw new Error(`no isolated point on map ${space}`)
  return index
}
