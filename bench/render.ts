// Map rendering at scale: frames per second while the camera orbits and pick times, for 60k and
// 200k points, in Debian's Chromium (software WebGL via SwiftShader here; a user's GPU does far
// better). Run by bench/run.ts, or alone: npx tsx bench/render.ts (after npm run build).
import { join } from 'node:path'
import { chromium } from '@playwright/test'

export interface RenderFigures {
  n: number
  fps: number
  drawnWhileMoving: number
  /** The same orbit drawing every point on every frame. */
  fullFps: number
  pickAfterNewPointsMs: number
  pickAfterMoveMs: number
  pickStillMedianMs: number
  pickStillP95Ms: number
  renderer: string
}

export async function measureRendering(counts: number[]): Promise<RenderFigures[]> {
  const { startHost } = require(join(__dirname, '../out/main/host.js')) as { startHost(o: object): Promise<{ port: number; close(): Promise<void> }> }
  const host = await startHost({})
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--enable-unsafe-swiftshader',
      '--use-angle=swiftshader'
    ]
  })
  const results: RenderFigures[] = []
  try {
    const measure = async (query: string): Promise<RenderFigures> => {
      const page = await browser.newPage({ viewport: { width: 1280, height: 800 } })
      await page.goto(`http://127.0.0.1:${host.port}/bench.html?${query}&seconds=4`)
      await page.waitForFunction(() => (window as unknown as { benchResult?: unknown }).benchResult !== undefined, undefined, { timeout: 120_000 })
      const figures = await page.evaluate(() => (window as unknown as { benchResult: RenderFigures }).benchResult)
      await page.close()
      return figures
    }
    for (const n of counts) {
      const full = await measure(`n=${n}&motion=all`)
      results.push({ ...(await measure(`n=${n}`)), fullFps: full.fps })
    }
  } finally {
    await browser.close()
    await host.close()
  }
  return results
}

if (require.main === module) {
  measureRendering([60_000, 200_000]).then((r) => console.log(JSON.stringify(r, null, 1)))
}
