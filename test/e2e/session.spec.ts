// What the engine holds outlives the page, and an interrupted run is not lost (issue 12): a page
// reloaded mid-training re-attaches to the dataset, the running training and its curves; a run
// cancelled after its first checkpoint is listed as interrupted and resumes from the window. Also
// the panels of issues 14 and 15: latent health after training, the objective's defaults per
// family, and the diagnostics panel.
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { expect, test } from '@playwright/test'
import { writeShapesFolder } from '../../electron/engine/datasets/shapes'
import { startTestHost, type Host } from './helpers'

let host: Host
let datasetDir: string

test.describe.configure({ mode: 'serial' })

test.beforeAll(async () => {
  datasetDir = await mkdtemp(join(tmpdir(), 'cartographer-e2e-session-'))
  await writeShapesFolder(datasetDir, { countPerClass: 40, size: 28, seed: 4 })
  host = await startTestHost()
})

test.afterAll(async () => {
  await host?.close()
})

const epochOf = (readout: string | null) => Number(/epoch (\d+)\//.exec(readout ?? '')?.[1] ?? NaN)

test('a page reloaded mid-training re-attaches; a cancelled run resumes from the list', async ({ page }, testInfo) => {
  await page.goto(host.url)
  await page.getByTestId('dataset-path').fill(datasetDir)
  await page.getByTestId('open-dataset').click()
  await expect(page.getByTestId('dataset-title')).toContainText('240')
  await page.getByTestId('model-family').selectOption('vae')
  await page.getByTestId('epochs').fill('400')
  await page.getByTestId('train').click()
  // Past the first epoch, so that a checkpoint exists to resume from.
  await expect.poll(async () => epochOf(await page.getByTestId('train-readout').textContent()), { timeout: 120_000 }).toBeGreaterThanOrEqual(3)

  await page.reload()
  await expect(page.getByTestId('dataset-title')).toContainText('240')
  await expect(page.getByTestId('train-progress')).toBeVisible()
  await expect(page.getByRole('button', { name: 'Pause' })).toBeVisible()
  // The curves so far came back with the page: the held-out table has its epochs.
  await expect(page.getByTestId('heldout-terms')).toBeVisible()
  await page.screenshot({ path: testInfo.outputPath('reattached.png') })

  await page.getByRole('button', { name: 'Cancel' }).click()
  await expect(page.getByTestId('train')).toBeVisible()
  const run = page.getByTestId('run').first()
  await expect(run).toHaveAttribute('data-state', 'interrupted')
  const listed = await run.textContent()
  const done = Number(/(\d+)\/400 epochs/.exec(listed ?? '')?.[1])
  expect(done).toBeGreaterThanOrEqual(1)

  await run.getByTestId('resume-run').click()
  await expect(page.getByRole('button', { name: 'Pause' })).toBeVisible()
  // It continues where the checkpoint was, not from epoch 1.
  await expect.poll(async () => epochOf(await page.getByTestId('train-readout').textContent())).toBeGreaterThan(done)
  await page.getByRole('button', { name: 'Cancel' }).click()
  await expect(page.getByTestId('train')).toBeVisible()
})

test('the CDVAE shows its objective defaults, and its latent health once trained', async ({ page }, testInfo) => {
  await page.goto(host.url)
  await page.getByTestId('dataset-path').fill(datasetDir)
  await page.getByTestId('open-dataset').click()
  await expect(page.getByTestId('dataset-title')).toContainText('240')
  await page.getByTestId('model-family').selectOption('cdvae')
  await expect(page.getByTestId('objective-summary')).toContainText(/KL\(z_l\) [x×]4/)
  // The latent size shows how it splits over the spaces, as the engine builds them.
  await expect(page.getByTestId('latent-split')).toHaveText('z_l 8 · z_u 5')
  await page.getByTestId('latent-size').fill('24')
  await expect(page.getByTestId('latent-split')).toHaveText('z_l 12 · z_u 7')
  await page.getByTestId('model-family').selectOption('vae')
  await expect(page.getByTestId('latent-split')).toHaveText('z 24')
  await page.getByTestId('latent-size').fill('16')
  await expect(page.getByTestId('objective-summary')).toContainText('ELBO')
  await page.getByTestId('model-family').selectOption('cdvae')
  // The class prior's radius shows its default and, changed, travels into run.json.
  await page.getByTestId('objective-options').locator('summary').click()
  await expect(page.getByTestId('prior-radius')).toHaveValue('6')
  await page.getByTestId('prior-radius').fill('7')
  await page.getByTestId('prior-radius').blur()
  await expect(page.getByTestId('objective-summary')).toContainText('class prior radius 7')
  await page.getByTestId('epochs').fill('3')
  await page.getByTestId('train').click()
  await expect(page.getByTestId('status-message')).toContainText('ready', { timeout: 240_000 })
  const health = page.getByTestId('latent-health')
  await expect(health).toBeVisible()
  for (const space of ['z_l', 'z_u']) {
    const row = page.getByTestId(`health-${space}`)
    await expect(row).toBeVisible()
    // "<KL> nats" and "<active>/<dims>" are figures, not placeholders.
    expect(await row.textContent()).toMatch(/\d+\.\d+/)
  }
  await expect(page.getByTestId('free-classifier')).toHaveText(/^\d+(\.\d+)?%$/)
  await expect(page.getByTestId('iwae')).toContainText(/−log p\(x\) ≤ \d+\.\d+ ± \d+\.\d+ nats .*K = 100/)
  // Data out: the run's exports/ holds NPY files numpy reads and a projector folder.
  await page.getByTestId('export-run').click()
  await expect(page.locator('.notice')).toContainText(/Exported \d+ files to .*exports/)
  const dir = /to (\/.*exports)$/.exec((await page.locator('.notice').textContent()) ?? '')?.[1] ?? ''
  expect((await readFile(join(dir, 'latents-z_l.npy'))).subarray(1, 6).toString('latin1')).toBe('NUMPY')
  expect(await readFile(join(dir, 'projector', 'projector_config.pbtxt'), 'utf8')).toContain('tensor_path: "tensors-z_u.tsv"')
  expect(JSON.parse(await readFile(join(dir, 'model', 'decoder', 'model.json'), 'utf8')).format).toBe('layers-model')
  expect(JSON.parse(await readFile(join(dir, 'model', 'run.json'), 'utf8')).config.classPriorRadius).toBe(7)
  await health.scrollIntoViewIfNeeded()
  await page.screenshot({ path: testInfo.outputPath('latent-health.png') })
})

test('runs are named, compared side by side, and deleted after a confirmation', async ({ page }, testInfo) => {
  await page.goto(host.url)
  const runs = page.getByTestId('run')
  await expect.poll(async () => runs.count()).toBeGreaterThanOrEqual(2)
  const count = await runs.count()

  await runs.nth(0).getByTestId('rename-run').click()
  await page.getByTestId('run-title-input').fill('baseline CDVAE')
  await page.getByTestId('run-title-save').click()
  await expect(runs.nth(0).getByTestId('run-open')).toContainText('baseline CDVAE')

  await runs.nth(0).getByTestId('compare-run').check()
  await runs.nth(1).getByTestId('compare-run').check()
  await page.getByTestId('compare-runs').click()
  const table = page.getByTestId('comparison-table')
  await expect(table).toContainText('baseline CDVAE')
  // Both runs' held-out -ELBO and bits/dim are figures, and the chart is drawn.
  await expect(page.getByTestId('comparison-total')).toHaveText(/−ELBO\s*\d+\.\d+\s*\d+\.\d+/)
  await expect(page.getByTestId('comparison-bits_per_dim')).toHaveText(/\d\.\d{4}.*\d\.\d{4}/)
  await expect(page.getByTestId('comparison-chart').locator('canvas')).toBeVisible()
  await page.screenshot({ path: testInfo.outputPath('compare.png') })

  await runs
    .nth(count - 1)
    .getByTestId('delete-run')
    .click()
  await expect(runs).toHaveCount(count)
  await runs
    .nth(count - 1)
    .getByTestId('confirm-delete-run')
    .click()
  await expect(runs).toHaveCount(count - 1)
})

test('window habits: the ? overlay, recent folders, a log scale for the curves, a paused ETA', async ({ page }) => {
  await page.goto(host.url)
  await page.keyboard.press('?')
  await expect(page.getByTestId('help-overlay')).toContainText('double-click')
  await page.keyboard.press('Escape')
  await expect(page.getByTestId('help-overlay')).toHaveCount(0)
  await page.getByTestId('dataset-path').fill(datasetDir)
  await page.getByTestId('open-dataset').click()
  await expect(page.getByTestId('dataset-title')).toContainText('240')
  // The title comes with the dataset.loaded event, the recent list once the request returns: a
  // reload before that would lose nothing real, but would test nothing either.
  await expect(page.getByTestId('recent-datasets')).toContainText(basename(datasetDir))
  await page.reload()
  await expect(page.getByTestId('recent-datasets')).toContainText(basename(datasetDir))
  await page.getByTestId('model-family').selectOption('vae')
  await page.getByTestId('epochs').fill('200')
  await page.getByTestId('train').click()
  await expect(page.getByTestId('loss-chart').locator('canvas')).toBeVisible()
  await page.getByTestId('loss-log-scale').check()
  await expect(page.getByTestId('loss-chart').locator('canvas')).toBeVisible()
  await page.getByRole('button', { name: 'Pause' }).click()
  await expect(page.getByTestId('train-readout')).toContainText('paused')
  await page.getByRole('button', { name: 'Cancel' }).click()
  await expect(page.getByTestId('train')).toBeVisible()
})

test('a folder dropped onto the window opens; a dropped file whose path the browser hides says so', async ({ page }) => {
  const dropDir = await mkdtemp(join(tmpdir(), 'cartographer-e2e-drop-'))
  await writeShapesFolder(dropDir, { countPerClass: 10, size: 28, seed: 6 })
  await page.goto(host.url)
  const drop = (payload: { uri?: string; fileName?: string }) =>
    page.evaluate(({ uri, fileName }) => {
      const data = new DataTransfer()
      if (uri) data.setData('text/uri-list', uri)
      if (fileName) data.items.add(new File(['x'], fileName))
      window.dispatchEvent(new DragEvent('dragover', { dataTransfer: data, bubbles: true, cancelable: true }))
      document.body.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }))
    }, payload)
  // A file manager's drag: a file:// link, the path percent-encoded.
  await drop({ uri: `file://${dropDir.split('/').map(encodeURIComponent).join('/')}` })
  await expect(page.getByTestId('dataset-title')).toContainText('60')
  await expect(page.getByTestId('drop-target')).toHaveCount(0)
  await drop({ fileName: 'my-images' })
  await expect(page.getByTestId('error')).toContainText('"my-images" was dropped')
  await expect(page.getByTestId('error')).toContainText('type or paste its path')
})

test('the diagnostics panel lists every backend and the one chosen', async ({ page }) => {
  await page.goto(host.url)
  await page.getByTestId('open-diagnostics').click()
  const panel = page.getByTestId('diagnostics')
  await expect(panel).toBeVisible()
  await expect(page.getByTestId('diagnostics-chosen')).toHaveText(/wasm|cpu|webgpu|tensorflow/, { timeout: 120_000 })
  for (const name of ['tfjs-node-gpu', 'webgpu', 'tfjs-node', 'wasm']) await expect(panel).toContainText(name)
  // What tfjs-node-gpu would need, library by library.
  await expect(panel).toContainText('libcudart.so.11.0')
  await expect(panel).toContainText('libcudnn.so.8')
})
