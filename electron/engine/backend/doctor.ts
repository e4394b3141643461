// `cartographer doctor` and the window's diagnostics: every backend, whether it loads and exactly
// why not; for tfjs-node-gpu the CUDA and cuDNN libraries found and what to install; the WebGPU
// adapter with its key limits; the backend the app would choose; and a short training benchmark of
// the reference model on each backend that runs, in images per second. It switches tfjs backends,
// so it runs in a process of its own (the CLI), never inside a working engine.
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { createModel, defaultModelConfig } from '../../../models/index'
import { Trainer } from '../../../models/train'
import type { TrainingData } from '../../../models/data'
import { selectBackend, type BackendPreference } from './select'
import { ParallelTrainer } from '../training/parallel-trainer'
import type { CudaLibrary, DoctorReport } from '../../common/contract'
import { probeWebGpu } from './webgpu'

/** What tfjs-node-gpu 4.22 (TensorFlow 2.9.1) dlopens: CUDA 11.2 and cuDNN 8.1 exactly. */
const CUDA_SONAMES = [
  'libcudart.so.11.0',
  'libcublas.so.11',
  'libcublasLt.so.11',
  'libcufft.so.10',
  'libcurand.so.10',
  'libcusolver.so.11',
  'libcusparse.so.11',
  'libcudnn.so.8'
]

function run(command: string, args: string[]): string | null {
  try {
    return execFileSync(command, args, { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] })
  } catch {
    return null
  }
}

/** Every shared library the dynamic linker and the usual CUDA folders know, by file name. */
function knownLibraries(): Map<string, string> {
  const found = new Map<string, string>()
  for (const line of (run('ldconfig', ['-p']) ?? run('/sbin/ldconfig', ['-p']) ?? '').split('\n')) {
    const [, name, path] = /^\s*(\S+) .*=> (\S+)$/.exec(line) ?? []
    if (name && path && !found.has(name)) found.set(name, path)
  }
  const folders = [...(process.env.LD_LIBRARY_PATH ?? '').split(':'), '/usr/local/cuda/lib64', '/usr/lib/x86_64-linux-gnu']
  try {
    for (const entry of readdirSync('/usr/local')) if (entry.startsWith('cuda')) folders.push(join('/usr/local', entry, 'lib64'))
  } catch {
    // No /usr/local: nothing to add.
  }
  for (const folder of folders) {
    if (!folder || !existsSync(folder)) continue
    try {
      for (const name of readdirSync(folder)) if (/^lib(cu|nv)/.test(name) && !found.has(name)) found.set(name, join(folder, name))
    } catch {
      // An unreadable folder: skipped.
    }
  }
  return found
}

export function cudaReport(): DoctorReport['cuda'] {
  const known = knownLibraries()
  const libraries: CudaLibrary[] = CUDA_SONAMES.map((name) => {
    const stem = name.slice(0, name.indexOf('.so') + 3)
    return { name, path: known.get(name) ?? null, others: [...known.keys()].filter((k) => k.startsWith(`${stem}.`) && k !== name).sort() }
  })
  const gpus = (run('nvidia-smi', ['-L']) ?? '').split('\n').filter((line) => /^GPU \d+:/.test(line))
  const driver = run('nvidia-smi', ['--query-gpu=driver_version', '--format=csv,noheader'])?.split('\n')[0]?.trim() || null
  const missing = libraries.filter((l) => !l.path)
  let advice: string
  if (process.platform === 'darwin') advice = 'tfjs-node-gpu does not exist for macOS: the app uses WebGPU (Metal) there.'
  else if (gpus.length === 0) advice = 'No NVIDIA GPU is visible (nvidia-smi lists none): tfjs-node-gpu cannot help; WebGPU runs on any vendor.'
  else if (missing.length === 0) advice = 'Every library tfjs-node-gpu needs is present.'
  else {
    const newer = missing.flatMap((l) => l.others).filter((o) => /\.so\.1[2-9]/.test(o))
    advice =
      `tfjs-node-gpu 4.22 needs CUDA 11.2 and cuDNN 8.1 exactly; missing: ${missing.map((l) => l.name).join(', ')}.` +
      (newer.length ? ` Found newer ones (${newer.slice(0, 3).join(', ')}), which it cannot use.` : '') +
      ' Install CUDA 11.2 and cuDNN 8.1 beside your current CUDA (e.g. into /usr/local/cuda-11.2, on LD_LIBRARY_PATH), or let the app train on WebGPU.'
  }
  return { gpus, driver, libraries, advice }
}

/** The reference VAE (../shared/bench/README.md) on 28x28 images, as the bench trains it. */
function syntheticData(count: number): TrainingData {
  const pixels = new Uint8Array(count * 784)
  // Blobs of varying size and brightness: a loss that moves, without a dataset on disk.
  for (let i = 0; i < count; i++) {
    const radius = 4 + (i % 9)
    const cx = 8 + (i % 13)
    const cy = 8 + ((i * 7) % 13)
    for (let y = 0; y < 28; y++)
      for (let x = 0; x < 28; x++) if ((x - cx) ** 2 + (y - cy) ** 2 <= radius * radius) pixels[i * 784 + y * 28 + x] = 120 + (i % 130)
  }
  const indices = Int32Array.from({ length: count }, (_, i) => i)
  return {
    shape: { height: 28, width: 28, channels: 1 },
    pixels,
    labels: null,
    numClasses: 0,
    trainIndices: indices,
    heldOutIndices: indices.subarray(0, 0),
    binarize: true
  }
}

/** Training steps of batch 128 for about `seconds` after two warm-up steps; images per second. */
async function measureTraining(seconds: number, parallel: boolean): Promise<number> {
  const data = syntheticData(1024)
  const model = createModel(defaultModelConfig('vae', data.shape, 0, { latentDims: { z: 16 }, seed: 1 }))
  const options = { epochs: 1, batchSize: 128, learningRate: 1e-3, seed: 1, checkpointEverySteps: 1e9 }
  const trainer = parallel ? new ParallelTrainer(model, data, options) : new Trainer(model, data, options)
  try {
    if (trainer instanceof ParallelTrainer) await trainer.start()
    const batch = (i: number) => data.trainIndices.subarray((i % 8) * 128, ((i % 8) + 1) * 128)
    for (let i = 0; i < 2; i++) await trainer.trainStep(batch(i), i, i)
    const started = performance.now()
    let steps = 0
    while (performance.now() - started < seconds * 1000 || steps < 2) await trainer.trainStep(batch(steps), 10 + steps, 10 + steps++)
    return (steps * 128) / ((performance.now() - started) / 1000)
  } finally {
    if (trainer instanceof ParallelTrainer) await trainer.stop()
    trainer.dispose()
    model.dispose()
  }
}

/**
 * The whole report. `benchSeconds` 0 skips the benchmark; software WebGPU adapters are benchmarked
 * only with `includeSoftware` (a step takes tens of seconds there).
 */
export async function doctor(options: { benchSeconds?: number; includeSoftware?: boolean } = {}): Promise<DoctorReport> {
  const benchSeconds = options.benchSeconds ?? 10
  const auto = await selectBackend('auto')
  const chosen = { backend: auto.backend, adapter: auto.adapter ?? null }
  const webgpu = await probeWebGpu()
  const benchmark: DoctorReport['benchmark'] = []
  if (benchSeconds > 0) {
    const candidates: { preference: BackendPreference; label: string; parallel?: boolean }[] = [
      { preference: 'tensorflow-gpu', label: 'tfjs-node-gpu' },
      { preference: 'webgpu', label: 'webgpu' },
      { preference: 'tensorflow', label: 'tfjs-node' },
      { preference: 'wasm', label: 'wasm, 1 thread' },
      { preference: 'wasm', label: `wasm, ${Math.min(2, availableParallelism())} threads (data-parallel)`, parallel: true }
    ]
    for (const candidate of candidates) {
      if (candidate.parallel && availableParallelism() < 2) continue
      if (candidate.preference === 'webgpu' && webgpu.adapter?.software && !options.includeSoftware) {
        benchmark.push({
          backend: candidate.label,
          imagesPerSecond: null,
          note: 'software adapter: correctness only, not benchmarked (--include-software to time it)'
        })
        continue
      }
      try {
        const selection = await selectBackend(candidate.preference)
        if (candidate.preference === 'tensorflow-gpu' && selection.backend !== 'tfjs-node-gpu') throw new Error('no CUDA device')
        benchmark.push({
          backend: candidate.label,
          imagesPerSecond: await measureTraining(benchSeconds, candidate.parallel ?? false),
          note: selection.adapter ? `on ${selection.adapter.vendor} ${selection.adapter.device}` : ''
        })
      } catch (error) {
        benchmark.push({ backend: candidate.label, imagesPerSecond: null, note: (error as Error).message.split('\n')[0] ?? '' })
      }
    }
    await selectBackend('auto')
  }
  return {
    platform: `${process.platform} ${process.arch}, Node ${process.versions.node}`,
    cores: availableParallelism(),
    chosen,
    backends: auto.choices,
    cuda: cudaReport(),
    webgpu,
    benchmark
  }
}

/** The report as a terminal reads it. */
export function formatDoctor(report: DoctorReport): string {
  const lines = [
    `platform   ${report.platform}, ${report.cores} cores`,
    `chosen     ${report.chosen.backend}${report.chosen.adapter ? ` on ${report.chosen.adapter.vendor} ${report.chosen.adapter.device}` : ''}`,
    'backends'
  ]
  for (const b of report.backends) lines.push(`  ${b.name.padEnd(14)} ${b.status}`)
  lines.push('webgpu')
  const a = report.webgpu.adapter
  if (a) {
    lines.push(`  adapter    ${a.vendor} · ${a.architecture} · ${a.device} · ${a.description}${a.software ? ' (software)' : ''}`)
    lines.push(
      `  limits     ${Object.entries(a.limits)
        .map(([k, v]) => `${k} ${v.toLocaleString('en')}`)
        .join(', ')}`
    )
  } else lines.push(`  ${report.webgpu.failure}`)
  lines.push('cuda (tfjs-node-gpu)')
  lines.push(
    `  gpus       ${report.cuda.gpus.length ? report.cuda.gpus.join('; ') : 'none visible'}${report.cuda.driver ? ` (driver ${report.cuda.driver})` : ''}`
  )
  for (const l of report.cuda.libraries)
    lines.push(`  ${l.name.padEnd(20)} ${l.path ?? 'not found'}${l.others.length ? ` (present: ${l.others.join(', ')})` : ''}`)
  lines.push(`  ${report.cuda.advice}`)
  if (report.benchmark.length) {
    lines.push('benchmark  reference VAE training, batch 128')
    for (const b of report.benchmark)
      lines.push(
        `  ${b.backend.padEnd(34)} ${b.imagesPerSecond === null ? '-' : `${Math.round(b.imagesPerSecond).toLocaleString('en')} img/s`}${b.note ? `  ${b.note}` : ''}`
      )
  }
  return lines.join('\n')
}
