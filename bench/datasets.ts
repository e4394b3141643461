// Benchmark of the image-folder loader: first load speed, its peak memory against the size of the
// loaded data, and the cached reopen.
//
//   npx tsx bench/datasets.ts              100,000 64x64 RGB PNGs (several minutes on 2 cores)
//   npx tsx bench/datasets.ts --count 5000 a quick run
//
// The folder is generated in a temp dir (not timed), then each measurement runs in a fresh child
// process, so the baseline memory is that of a process that has loaded nothing yet (generating
// the PNGs would otherwise leave sharp's and malloc's memory in the figure) and the reopen is a
// real reopen, as after restarting the app. Prints one JSON object on stdout; progress on stderr.

import { fork } from 'node:child_process'
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { seededRandom } from '../models/random'

const SIDE = 64
const CHANNELS = 3
const CLASSES = 10
const SAMPLE_MS = 50

interface LoadMeasure {
  seconds: number
  items: number
  baselineMb: number
  peakExtraMb: number
  fromCache: boolean
}

function argument(name: string): string | undefined {
  const at = process.argv.indexOf(name)
  return at >= 0 ? process.argv[at + 1] : undefined
}

const log = (message: string): void => {
  process.stderr.write(`${message}\n`)
}

/** A two-colour gradient at a random angle plus noise: compresses like a real small photo, not like a flat fill. */
function syntheticImage(index: number): Buffer {
  const random = seededRandom(index * 2654435761 + 12345)
  const from = [random() * 255, random() * 255, random() * 255]
  const to = [random() * 255, random() * 255, random() * 255]
  const angle = random() * Math.PI * 2
  const dx = Math.cos(angle) / SIDE
  const dy = Math.sin(angle) / SIDE
  const noise = 8 + random() * 24
  const raw = Buffer.alloc(SIDE * SIDE * CHANNELS)
  for (let y = 0; y < SIDE; y++) {
    for (let x = 0; x < SIDE; x++) {
      const t = Math.min(1, Math.max(0, 0.5 + (x - SIDE / 2) * dx + (y - SIDE / 2) * dy))
      for (let c = 0; c < CHANNELS; c++) {
        const value = from[c] + (to[c] - from[c]) * t + (random() - 0.5) * noise
        raw[(y * SIDE + x) * CHANNELS + c] = value < 0 ? 0 : value > 255 ? 255 : value
      }
    }
  }
  return raw
}

async function generate(dir: string, count: number): Promise<void> {
  const { default: sharp } = await import('sharp')
  for (let c = 0; c < CLASSES; c++) await mkdir(join(dir, `class${c}`), { recursive: true })
  let next = 0
  let lastLog = performance.now()
  const started = performance.now()
  const worker = async (): Promise<void> => {
    while (next < count) {
      const index = next++
      const png = await sharp(syntheticImage(index), { raw: { width: SIDE, height: SIDE, channels: CHANNELS } })
        .png({ compressionLevel: 1 })
        .toBuffer()
      await writeFile(join(dir, `class${index % CLASSES}`, `${index}.png`), png)
      if (performance.now() - lastLog > 5000) {
        lastLog = performance.now()
        log(`generated ${index} / ${count} (${(index / ((lastLog - started) / 1000)).toFixed(0)} files/s)`)
      }
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
}

/** Child process: one loadDataset call, sampling resident memory every 50 ms. */
async function measure(dir: string, cacheDir: string): Promise<LoadMeasure> {
  const { loadDataset } = await import('../electron/engine/datasets/index')
  // Let module loading settle so the baseline is the idle process, sharp's library included.
  await new Promise((resolve) => setTimeout(resolve, 200))
  const baseline = process.memoryUsage().rss
  let peak = baseline
  const sample = (): void => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }
  const timer = setInterval(sample, SAMPLE_MS)
  const started = performance.now()
  const dataset = await loadDataset(dir, { cacheDir })
  const seconds = (performance.now() - started) / 1000
  sample()
  clearInterval(timer)
  return {
    seconds,
    items: dataset.itemNames.length,
    baselineMb: baseline / 2 ** 20,
    peakExtraMb: (peak - baseline) / 2 ** 20,
    fromCache: dataset.report.notes.some((note) => note.includes('loaded from cache'))
  }
}

function runChild(dir: string, cacheDir: string): Promise<LoadMeasure> {
  return new Promise((resolve, reject) => {
    // fork re-runs this file under the same tsx loader (execArgv is inherited).
    const child = fork(__filename, ['--measure', dir, cacheDir], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
    let result: LoadMeasure | null = null
    child.on('message', (message) => {
      result = message as LoadMeasure
    })
    child.on('error', reject)
    child.on('exit', (code) => {
      if (code === 0 && result) resolve(result)
      else reject(new Error(`measurement process exited with ${code}`))
    })
  })
}

function countLabel(count: number): string {
  return count % 1000 === 0 ? `${count / 1000}k` : String(count)
}

const round = (value: number, digits = 3): number => Number(value.toFixed(digits))

async function main(): Promise<void> {
  const measureDir = argument('--measure')
  if (measureDir) {
    const result = await measure(measureDir, process.argv[process.argv.indexOf('--measure') + 2])
    process.send!(result)
    return
  }
  const count = Number(argument('--count') ?? 100_000)
  if (!Number.isInteger(count) || count < 1) throw new Error(`--count must be a positive whole number`)
  const root = await mkdtemp(join(tmpdir(), 'lc-bench-datasets-'))
  const dir = join(root, 'images')
  const cacheDir = join(root, 'cache')
  try {
    log(`generating ${count} ${SIDE}x${SIDE} RGB PNGs in ${dir}`)
    const generationStarted = performance.now()
    await generate(dir, count)
    const generationSeconds = (performance.now() - generationStarted) / 1000
    log(`generated in ${generationSeconds.toFixed(1)} s`)

    const first = await runChild(dir, cacheDir)
    if (first.fromCache || first.items !== count) throw new Error(`first load: ${JSON.stringify(first)}`)
    log(`first load: ${first.seconds.toFixed(1)} s, peak +${first.peakExtraMb.toFixed(0)} MB`)
    const reopen = await runChild(dir, cacheDir)
    if (!reopen.fromCache || reopen.items !== count) throw new Error(`reopen did not hit the cache: ${JSON.stringify(reopen)}`)
    log(`cached reopen: ${reopen.seconds.toFixed(2)} s, peak +${reopen.peakExtraMb.toFixed(0)} MB`)

    const cacheFiles = await readdir(cacheDir)
    const cacheBytes = (await Promise.all(cacheFiles.map(async (name) => (await stat(join(cacheDir, name))).size))).reduce((a, b) => a + b, 0)
    const n = countLabel(count)
    const uint8Mb = (count * SIDE * SIDE * CHANNELS) / 2 ** 20
    console.log(
      JSON.stringify({
        [`load_${n}_png_images_per_second`]: round(count / first.seconds, 1),
        [`load_${n}_png_peak_extra_mb`]: round(first.peakExtraMb, 1),
        [`load_${n}_uint8_mb`]: round(uint8Mb, 1),
        [`load_${n}_float32_mb`]: round(uint8Mb * 4, 1),
        [`load_${n}_cached_reopen_seconds`]: round(reopen.seconds),
        [`load_${n}_cached_reopen_peak_extra_mb`]: round(reopen.peakExtraMb, 1),
        [`load_${n}_first_load_seconds`]: round(first.seconds, 2),
        [`load_${n}_cache_file_mb`]: round(cacheBytes / 2 ** 20, 1),
        [`load_${n}_baseline_rss_mb`]: round(first.baselineMb, 1),
        generation_seconds: round(generationSeconds, 1)
      })
    )
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
