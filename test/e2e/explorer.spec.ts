// The explorer against the real engine on a small labelled dataset: linked maps, hover, inspect,
// click-to-decode, interpolation, class-conditional grids, traversals, neighbours, colour modes
// and the training dashboard's controls. Screenshots of each screen are kept as artifacts.
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { expect, test, type Page } from '@playwright/test'
import { writeShapesFolder } from '../../electron/engine/datasets/shapes'
import { canvasStats, isolatedItem, nonBackgroundFraction, pointOnPage, startTestHost, type Host } from './helpers'

let host: Host
let datasetDir: string

test.describe.configure({ mode: 'serial' })

test.beforeAll(async () => {
  datasetDir = await mkdtemp(join(tmpdir(), 'cartographer-e2e-explorer-'))
  await writeShapesFolder(datasetDir, { countPerClass: 40, size: 28, seed: 2 })
  host = await startTestHost()
})

test.afterAll(async () => {
  await host?.close()
})

async function pixels(page: Page, testId: string): Promise<number[]> {
  return page.getByTestId(testId).evaluate((element) => {
    const canvas = element as HTMLCanvasElement
    return Array.from((canvas.getContext('2d') as CanvasRenderingContext2D).getImageData(0, 0, canvas.width, canvas.height).data)
  })
}

/** The file a click downloads. */
async function download(page: Page, click: () => Promise<void>): Promise<Buffer> {
  const downloaded = page.waitForEvent('download')
  await click()
  const png = await readFile((await (await downloaded).path()) as string)
  expect(png.subarray(1, 4).toString()).toBe('PNG')
  return png
}

/** A PNG's size from its IHDR chunk. */
const pngSize = (png: Buffer) => ({ width: png.readUInt32BE(16), height: png.readUInt32BE(20) })

const maxDifference = (a: number[], b: number[]) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0)

async function openAndTrain(page: Page, family: string, epochs: string): Promise<void> {
  await page.goto(host.url)
  await page.getByTestId('dataset-path').fill(datasetDir)
  await page.getByTestId('open-dataset').click()
  await expect(page.getByTestId('dataset-title')).toContainText('240')
  await page.getByTestId('model-family').selectOption(family)
  await page.getByTestId('epochs').fill(epochs)
  await page.getByTestId('train').click()
  await expect(page.getByTestId('status-message')).toContainText('ready', { timeout: 240_000 })
}

test('CDVAE: linked maps, hover, inspect, decode a place, interpolate, generate, traverse', async ({ page }, testInfo) => {
  await openAndTrain(page, 'cdvae', '6')
  const shot = (name: string) => page.screenshot({ path: testInfo.outputPath(name) })

  // 1. One map per latent space, both drawn.
  for (const space of ['z_l', 'z_u']) {
    await expect.poll(() => nonBackgroundFraction(page, `[data-testid="map-${space}"] canvas.scatter-canvas`)).toBeGreaterThan(0.002)
  }

  // Linked views: hovering item 5 on z_l rings it on z_u too, and the tooltip names it.
  const hoverAt = await pointOnPage(page, 'z_l', await isolatedItem(page, 'z_l', 5))
  await page.mouse.move(hoverAt.x, hoverAt.y)
  const hovered = await page.evaluate(
    () => (window as unknown as { cartographerMaps: Record<string, { highlightedIndex: number | null }> }).cartographerMaps.z_l.highlightedIndex
  )
  expect(hovered).not.toBeNull()
  const linked = await page.evaluate(
    () => (window as unknown as { cartographerMaps: Record<string, { highlightedIndex: number | null }> }).cartographerMaps.z_u.highlightedIndex
  )
  expect(linked).toBe(hovered)
  await expect(page.locator('.tip')).toContainText(`#${hovered}`)
  // 2. The hover preview is the item's thumbnail, drawn from the atlas.
  await expect(page.getByTestId('hover-thumbnail')).toBeVisible()
  const thumb = await canvasStats(page, '[data-testid="hover-thumbnail"]')
  expect(thumb.width).toBe(28)
  expect(thumb.std).toBeGreaterThan(5)
  await shot('1-linked-hover.png')

  // The map as a PNG at twice its size on screen, every point drawn.
  const mapCanvas = page.locator('[data-testid="map-z_l"] canvas.scatter-canvas')
  const onScreen = await mapCanvas.evaluate((c) => ({ width: c.clientWidth, height: c.clientHeight }))
  await page.getByTestId('map-png-scale-z_l').selectOption('2')
  const mapPng = await download(page, () => page.getByTestId('map-png-z_l').click())
  expect(pngSize(mapPng)).toEqual({ width: onScreen.width * 2, height: onScreen.height * 2 })

  // Lasso: a square dragged round item 5 selects exactly the items drawn inside it, and they export.
  await page.getByTestId('lasso-mode').check()
  const half = 45
  const corners = [
    [-half, -half],
    [half, -half],
    [half, half],
    [-half, half],
    [-half, -half + 1]
  ]
  await page.mouse.move(hoverAt.x + corners[0][0], hoverAt.y + corners[0][1])
  await page.mouse.down()
  for (const [dx, dy] of corners.slice(1)) await page.mouse.move(hoverAt.x + dx, hoverAt.y + dy, { steps: 6 })
  await page.mouse.up()
  // Items well inside the square must be selected, items well outside must not; a point within a
  // pixel of the outline may go either way (the mouse path is sampled).
  const near = await page.evaluate(
    ([x, y, h]) => {
      const map = (
        window as unknown as {
          cartographerMaps: Record<string, { count: number; canvas: HTMLCanvasElement; screenPosition(i: number): { x: number; y: number } | null }>
        }
      ).cartographerMaps.z_l
      const rect = map.canvas.getBoundingClientRect()
      const inner: number[] = []
      const outer: number[] = []
      for (let i = 0; i < map.count; i++) {
        const p = map.screenPosition(i)
        if (!p) continue
        const d = Math.max(Math.abs(p.x + rect.left - x), Math.abs(p.y + rect.top - y))
        if (d < h - 2) inner.push(i)
        if (d < h + 2) outer.push(i)
      }
      return { inner, outer }
    },
    [hoverAt.x, hoverAt.y, half]
  )
  expect(near.inner.length).toBeGreaterThan(0)
  await expect(page.getByTestId('selection-summary')).toContainText('items selected on z_l')
  const selectedCount = Number(/(\d+) items selected/.exec((await page.getByTestId('selection-summary').textContent()) ?? '')?.[1] ?? NaN)
  await page.getByTestId('export-selection').click()
  await expect(page.locator('.notice')).toContainText(`Exported ${selectedCount} selected items`)
  const exportDir = /to (\S+)$/.exec((await page.locator('.notice').textContent()) ?? '')?.[1] ?? ''
  const indicesNpy = await readFile(join(exportDir, 'indices.npy'))
  const headerLength = indicesNpy.readUInt16LE(8)
  const exported = Array.from(new Int32Array(indicesNpy.buffer.slice(indicesNpy.byteOffset + 10 + headerLength, indicesNpy.byteOffset + indicesNpy.byteLength)))
  expect(exported).toHaveLength(selectedCount)
  for (const i of near.inner) expect(exported).toContain(i)
  for (const i of exported) expect(near.outer).toContain(i)
  await shot('1b-lasso.png')
  await page.keyboard.press('Escape')
  await expect(page.getByTestId('selection-summary')).toHaveCount(0)
  await expect(page.getByTestId('lasso-mode')).not.toBeChecked()

  // Colour by reconstruction error changes the map's colours.
  const before = await page.locator('[data-testid="map-z_l"] canvas.scatter-canvas').screenshot()
  await page.getByTestId('colour-mode').selectOption('error')
  await expect(page.getByTestId('working')).toHaveCount(0)
  await page.waitForTimeout(300)
  const after = await page.locator('[data-testid="map-z_l"] canvas.scatter-canvas').screenshot()
  expect(Buffer.compare(before, after)).not.toBe(0)
  await page.getByTestId('colour-mode').selectOption('class')

  // 2. Click an item: original, reconstruction, predicted class, neighbours per space.
  const itemA = await isolatedItem(page, 'z_l', 10)
  const a = await pointOnPage(page, 'z_l', itemA)
  await page.mouse.click(a.x, a.y)
  await expect(page.getByTestId('inspect-panel')).toBeVisible()
  await expect(page.locator('.item-title')).toContainText(`#${itemA}`)
  await expect(page.getByTestId('predicted')).toContainText('predicted:')
  await expect(page.getByTestId('neighbours-z_l').locator('canvas')).toHaveCount(8)
  const reconstructionA = await pixels(page, 'image-reconstruction')
  await shot('2-inspect.png')

  // 4. Interpolation from A to a Shift-clicked B: the strip's ends are the two items' decodings.
  const bAt = await pointOnPage(page, 'z_l', await isolatedItem(page, 'z_l', 200, [itemA]))
  await page.keyboard.down('Shift')
  await page.mouse.click(bAt.x, bAt.y)
  await page.keyboard.up('Shift')
  await page.getByTestId('interpolate-space').selectOption('z_l')
  await page.getByTestId('interpolate').click()
  await expect(page.getByTestId('strip-x').locator('canvas')).toHaveCount(10)
  expect(maxDifference(await pixels(page, 'strip-x-0'), reconstructionA)).toBeLessThanOrEqual(2)
  const strip = await pixels(page, 'strip-x-9')
  // The whole strip is in view: its last image ends inside the drawer.
  const drawerBox = await page.getByTestId('drawer').boundingBox()
  const lastBox = await page.getByTestId('strip-x-9').boundingBox()
  expect(lastBox!.x + lastBox!.width).toBeLessThanOrEqual(drawerBox!.x + drawerBox!.width)
  expect(lastBox!.width).toBeGreaterThan(28)
  await shot('4-interpolation.png')
  // The PNG export downloads the strip: 10 images of 28 px at 4x, the row names beside them.
  const stripPng = await download(page, () => page.getByTestId('export-png').click())
  expect(pngSize(stripPng).width).toBeGreaterThan(10 * (28 * 4 + 2) + 2)
  // B's own reconstruction equals the strip's last image.
  const itemB = Number(/B: item #(\d+)/.exec((await page.getByTestId('interpolate-panel').textContent()) ?? '')?.[1] ?? NaN)
  expect(itemB).not.toBe(itemA)
  const b = await pointOnPage(page, 'z_l', itemB)
  await page.mouse.click(b.x, b.y)
  await expect(page.locator('.item-title')).toContainText(`#${itemB}`)
  expect(maxDifference(await pixels(page, 'image-reconstruction'), strip)).toBeLessThanOrEqual(2)

  // 5. The class grid: one column per class; every cell an image.
  await page.getByTestId('generate-grid').click()
  const grid = page.getByTestId('class-grid')
  await expect(grid.locator('thead th')).toHaveCount(6)
  await expect(grid.locator('tbody tr')).toHaveCount(4)
  await expect(grid.locator('tbody canvas')).toHaveCount(24)
  expect((await canvasStats(page, '[data-testid="grid-0-0"]')).std).toBeGreaterThan(5)
  await shot('5-class-grid.png')
  // Its PNG: 6 columns x 4 rows of 28 px at 4x, with a title line and the class names above.
  const gridPng = pngSize(await download(page, () => page.getByTestId('export-png').click()))
  expect(gridPng.width).toBe(6 * (28 * 4 + 2) + 2)
  expect(gridPng.height).toBeGreaterThan(4 * (28 * 4 + 2) + 2 + 30)
  // "This item as every class": one row, six columns.
  await page.getByTestId('item-as-every-class').click()
  await expect(grid.locator('tbody tr')).toHaveCount(1)
  await expect(grid.locator('tbody canvas')).toHaveCount(6)

  // 6. A traversal of z_u: its 5 dimensions ordered by KL, 9 values each.
  await page.getByTestId('traverse-z_u').click()
  const traversal = page.getByTestId('traversal-grid')
  await expect(traversal.locator('tbody tr')).toHaveCount(5)
  await expect(traversal.locator('tbody tr').first().locator('canvas')).toHaveCount(9)
  await shot('6-traversal.png')

  // 3. Click empty space (a corner of the map): the place is decoded and pinned.
  const box = await page.getByTestId('map-z_u').locator('canvas.scatter-canvas').boundingBox()
  await page.keyboard.press('Escape')
  await page.mouse.click(box!.x + 12, box!.y + box!.height - 12)
  await expect(page.getByTestId('pin-panel')).toBeVisible()
  expect((await canvasStats(page, '[data-testid="pin-decoded"]')).std).toBeGreaterThan(5)
  await expect(page.getByTestId('pin-panel')).toContainText('inverse-distance weighted mean')
  await shot('3-decoded-place.png')
})

test('SRVAE: three maps u, y, z and the item panel shows y and its decoding', async ({ page }, testInfo) => {
  await openAndTrain(page, 'srvae', '3')
  for (const space of ['u', 'y', 'z']) await expect(page.getByTestId(`map-${space}`).locator('canvas.scatter-canvas')).toBeVisible()
  const at = await pointOnPage(page, 'z', await isolatedItem(page, 'z', 3))
  await page.mouse.click(at.x, at.y)
  await expect(page.getByTestId('image-y')).toBeVisible()
  await expect(page.getByTestId('image-y_decoded')).toBeVisible()
  expect((await canvasStats(page, '[data-testid="image-y"]')).width).toBe(14)
  await page.getByTestId('samples').click()
  await expect(page.getByTestId('drawer')).toHaveAttribute('data-kind', 'samples')
  // y (14 px) is drawn at x's (28 px) size, each under its x, and no row runs off the drawer.
  const drawerRight = await page
    .getByTestId('drawer')
    .boundingBox()
    .then((b) => b!.x + b!.width)
  const count = await page.getByTestId('strip-x').locator('canvas').count()
  expect(count).toBeGreaterThan(1)
  for (const i of [0, count - 1]) {
    const x = await page.getByTestId(`strip-x-${i}`).boundingBox()
    const y = await page.getByTestId(`strip-y-${i}`).boundingBox()
    expect(Math.abs(x!.x - y!.x)).toBeLessThanOrEqual(1)
    expect(Math.abs(x!.width - y!.width)).toBeLessThanOrEqual(1)
    expect(x!.x + x!.width).toBeLessThanOrEqual(drawerRight)
  }
  await page.screenshot({ path: testInfo.outputPath('srvae.png') })
})

test('training dashboard: pause, resume and cancel', async ({ page }) => {
  await page.goto(host.url)
  await page.getByTestId('dataset-path').fill(datasetDir)
  await page.getByTestId('open-dataset').click()
  await expect(page.getByTestId('dataset-title')).toContainText('240')
  await page.getByTestId('epochs').fill('200')
  await page.getByTestId('train').click()
  await expect(page.getByTestId('train-progress')).toBeVisible()
  await page.getByRole('button', { name: 'Pause' }).click()
  await expect(page.getByTestId('status-message')).toContainText('paused')
  // Pausing takes effect after the step in flight: let it land, then nothing more may move.
  await page.waitForTimeout(1000)
  const paused = await page.getByTestId('train-readout').textContent()
  await page.waitForTimeout(1500)
  expect(await page.getByTestId('train-readout').textContent()).toBe(paused)
  await page.getByRole('button', { name: 'Resume' }).click()
  await expect(page.getByTestId('train-readout')).not.toHaveText(paused ?? '')
  await page.getByRole('button', { name: 'Cancel' }).click()
  await expect(page.getByTestId('train')).toBeVisible()
  await expect(page.locator('.notice')).toContainText('cancelled')
})
