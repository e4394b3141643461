// The path a user walks, end to end in Chromium against the real engine: open a dataset folder
// (generated here as real PNG files), train a VAE, see the 3D map, click a point, see its decoding.
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, test } from '@playwright/test'
import { writeShapesFolder } from '../../electron/engine/datasets/shapes'
import { canvasStats, isolatedItem, nonBackgroundFraction, pointOnPage, startTestHost, type Host } from './helpers'

let host: Host
let datasetDir: string

// The later tests reopen the model the second one trains: they run in order, and stop at a failure.
test.describe.configure({ mode: 'serial' })

test.beforeAll(async () => {
  datasetDir = await mkdtemp(join(tmpdir(), 'cartographer-e2e-shapes-'))
  await writeShapesFolder(datasetDir, { countPerClass: 40, size: 28, seed: 1 })
  host = await startTestHost()
})

test.afterAll(async () => {
  await host?.close()
})

test('the page refuses a visit without the run token', async ({ page }) => {
  const response = await page.goto(host.url.replace(/token=[^&]+/, 'token=wrong'))
  expect(response?.status()).toBe(403)
})

test('open a folder, train, see the map, click a point to decode it', async ({ page }, testInfo) => {
  await page.goto(host.url)
  await expect(page.getByTestId('backend')).toContainText('backend:')
  await expect(page.getByText('Open a dataset folder, or try the built-in dataset.')).toBeVisible()

  await page.getByTestId('dataset-path').fill(datasetDir)
  await page.getByTestId('open-dataset').click()
  await expect(page.getByTestId('dataset-title')).toContainText('240')
  await expect(page.getByTestId('legend').locator('li')).toHaveCount(6)
  await page.screenshot({ path: testInfo.outputPath('1-dataset.png') })

  await page.getByTestId('epochs').fill('4')
  await page.getByTestId('train').click()
  await expect(page.getByTestId('train-progress')).toBeVisible()
  await expect(page.getByTestId('status-message')).toContainText('ready', { timeout: 240_000 })
  await page.screenshot({ path: testInfo.outputPath('2-trained-map.png') })

  // The held-out terms are real numbers and the loss curve is drawn.
  await expect(page.getByTestId('heldout-terms')).toContainText('kl_z')
  await expect(page.getByTestId('loss-chart').locator('canvas')).toBeVisible()

  // The map is drawn: a good part of the canvas differs from the background.
  await expect.poll(() => nonBackgroundFraction(page, '[data-testid="map-z"] canvas.scatter-canvas')).toBeGreaterThan(0.002)

  // Click item 17 where the map draws it; the inspect panel shows it and its decoding.
  const at = await pointOnPage(page, 'z', await isolatedItem(page, 'z', 17))
  await page.mouse.click(at.x, at.y)
  const panel = page.getByTestId('inspect-panel')
  await expect(panel).toBeVisible()
  const title = await panel.locator('.item-title').textContent()
  const clicked = Number(/#(\d+)/.exec(title ?? '')?.[1])
  // Another point may be drawn at the very same place; whichever was picked must lie under the cursor.
  const pickedAt = await pointOnPage(page, 'z', clicked)
  expect(Math.hypot(pickedAt.x - at.x, pickedAt.y - at.y)).toBeLessThan(8)

  const original = await canvasStats(page, '[data-testid="image-original"]')
  const decoded = await canvasStats(page, '[data-testid="image-reconstruction"]')
  expect(original.width).toBe(28)
  expect(decoded.width).toBe(28)
  // Not blank: the decoding has structure (a shape on a background), not one flat colour.
  expect(decoded.std).toBeGreaterThan(10)
  await page.screenshot({ path: testInfo.outputPath('3-inspect.png') })

  // Esc clears the selection.
  await page.keyboard.press('Escape')
  await expect(panel).toHaveCount(0)

  // Hovering the point drawn nearest the map's right edge: the tooltip turns to stay inside the map.
  const rightmost = await page.evaluate(() => {
    const map = (
      window as unknown as {
        cartographerMaps: Record<string, { screenPosition(i: number): { x: number; y: number } | null; count: number; canvas: HTMLCanvasElement }>
      }
    ).cartographerMaps.z
    let best = 0
    let bestX = -Infinity
    for (let i = 0; i < map.count; i++) {
      const p = map.screenPosition(i)
      if (p && p.x < map.canvas.clientWidth - 2 && p.y > 2 && p.y < map.canvas.clientHeight - 2 && p.x > bestX) {
        best = i
        bestX = p.x
      }
    }
    return best
  })
  const edge = await pointOnPage(page, 'z', rightmost)
  await page.mouse.move(edge.x, edge.y)
  const tip = page.getByTestId('hover-tip')
  await expect(tip).toBeVisible()
  const tipBox = await tip.boundingBox()
  const mapBox = await page.getByTestId('map-z').boundingBox()
  expect(tipBox && mapBox).toBeTruthy()
  expect(tipBox!.x).toBeGreaterThanOrEqual(mapBox!.x)
  expect(tipBox!.x + tipBox!.width).toBeLessThanOrEqual(mapBox!.x + mapBox!.width)
  expect(tipBox!.y + tipBox!.height).toBeLessThanOrEqual(mapBox!.y + mapBox!.height)
  await page.screenshot({ path: testInfo.outputPath('4-hover-at-the-edge.png') })
})

test('the engine socket refuses a wrong token and a foreign origin, and listens on loopback only', async () => {
  expect(new URL(host.url).hostname).toBe('127.0.0.1')
  const { WebSocket } = await import('ws')
  const attempt = (token: string, origin: string) =>
    new Promise<string>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${host.port}/engine?token=${token}`, { headers: { Origin: origin } })
      ws.on('open', () => {
        ws.close()
        resolve('open')
      })
      ws.on('error', () => resolve('refused'))
    })
  const ownOrigin = `http://127.0.0.1:${host.port}`
  expect(await attempt('wrong', ownOrigin)).toBe('refused')
  expect(await attempt(host.token, 'http://evil.example')).toBe('refused')
  expect(await attempt(host.token, ownOrigin)).toBe('open')
})

test('a trained model reopens from the list with its stored map, without training again', async ({ page }) => {
  await page.goto(host.url)
  await expect(page.getByTestId('runs').locator('li').first()).toBeVisible()
  await page.getByTestId('runs').locator('button').first().click()
  await expect(page.getByTestId('dataset-title')).toContainText('240')
  await expect(page.getByTestId('status-message')).toContainText('ready', { timeout: 60_000 })
  // The stored projection was reused: the map is final at once, and the item still decodes.
  await expect(page.getByTestId('map-z').locator('canvas.scatter-canvas')).toBeVisible()
  await expect.poll(() => nonBackgroundFraction(page, '[data-testid="map-z"] canvas.scatter-canvas')).toBeGreaterThan(0.002)
  const at = await pointOnPage(page, 'z', await isolatedItem(page, 'z', 17))
  await page.mouse.click(at.x, at.y)
  await expect(page.getByTestId('image-reconstruction')).toBeVisible()
})

test('the map is redone in 2D with other UMAP settings', async ({ page }) => {
  await page.goto(host.url)
  await page.getByTestId('runs').locator('button').first().click()
  await expect(page.getByTestId('status-message')).toContainText('ready', { timeout: 60_000 })
  const panel = page.getByTestId('projection-panel')
  await panel.getByLabel('Neighbours').fill('10')
  await page.getByTestId('projection-dimensions').selectOption('2')
  await page.getByTestId('apply-projection').click()
  await expect(page.getByTestId('status-message')).toContainText('UMAP', { timeout: 30_000 })
  await expect(page.getByTestId('status-message')).toContainText('ready', { timeout: 120_000 })
  const depths = await page.evaluate(() => {
    const map = (window as unknown as { cartographerMaps: Record<string, { position(i: number): number[]; count: number }> }).cartographerMaps.z
    return Array.from({ length: map.count }, (_, i) => map.position(i)[2])
  })
  expect(depths.length).toBe(240)
  expect(depths.every((z) => z === 0)).toBe(true)
  await expect.poll(() => nonBackgroundFraction(page, '[data-testid="map-z"] canvas.scatter-canvas')).toBeGreaterThan(0.002)
})
