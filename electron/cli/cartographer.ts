// `npx cartographer`: headless training (for a GPU server) and dataset inspection. What `train`
// writes (run.json, a tfjs-format checkpoint, history.json, latents) is what the app writes too.
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import type { ModelFamily, VaeFamilyModel } from '../../models/index'
import type { LatentHealth } from '../../models/train'
import type { ModelMetrics } from '../../models/metrics'
import { describeObjective } from '../../models/objective'
import { BACKEND_PREFERENCES, describeBackends, selectBackend, type BackendPreference } from '../engine/backend/select'
import { describeTrainer } from '../engine/training/parallel-trainer'
import { loadDataset, loadDefaultDataset } from '../engine/datasets/index'
import type { ImageDataset, LoadReport } from '../engine/datasets/types'
import { defaultDataDir, isGeneratedSource } from '../engine/run/catalog'
import { RunFolder } from '../engine/run/folder'
import { encodeAndStore, measureAndStore, openStoredRun, readResumable, resumeRun, startRun, type TrainingRun } from '../engine/run/session'
import { writeExports } from '../engine/exports'
import { EXPORT_FORMAT_NAMES, type ExportFormatName, type TrainArgs } from '../common/contract'
import { ENGINE_VERSION } from '../engine/engine'
import { doctor, formatDoctor } from '../engine/backend/doctor'

const USAGE = `Latent Cartographer, headless

  cartographer train --data <folder> --out <dir> [--model vae|srvae|cdvae] [--epochs N]
                     [--latent D] [--batch B] [--lr L] [--seed S] [--max-items N]
                     [--kl-weight SPACE=W]... [--free-bits NATS] [--warmup STEPS]
                     [--independence W] [--adversary W] [--conditional-prior] [--prior-radius R]
                     [--backend auto|tensorflow-gpu|webgpu|tensorflow|wasm|cpu] [--resume]
  cartographer inspect --data <folder> [--size S]
  cartographer export --run <run folder> --out <folder> [--format npy,csv,projector,model]
  cartographer doctor [--json] [--bench-seconds S] [--include-software]
  cartographer --help | --version

train   trains a model and writes run.json, checkpoint files, history.json, latents-*.f32 and
        metrics.json (latent health, 5-NN class accuracy per space, the importance-weighted
        bound with K = 100, warnings) into --out;
        --resume continues from the last checkpoint in --out.
        --latent D spreads D over the spaces as the window does (16, the default: VAE z 16;
        SRVAE u 8, z 16; CDVAE z_l 8, z_u 5).
        The objective options change what training minimises (the reported loss is always the
        ELBO): --kl-weight z_l=4 weighs a space's KL, --free-bits spares each dimension's first
        nats, --warmup ramps the KL weights up over the first steps, --independence weighs the
        CDVAE's class-independence term on z_u, --adversary its adversarial class term on z_u.
        --prior-radius R starts a class prior's means R prior standard deviations from 0.
        Each family's defaults are in the README.
doctor  says which backends load and why others do not (CUDA/cuDNN libraries for
        tfjs-node-gpu, the WebGPU adapter and its limits), which one the app chooses, and times
        the reference model's training on each (--bench-seconds 0 skips that).
export  writes a trained run's latents (every space) and stored maps as NPY (numpy reads them) and
        CSV (item index, file, class, split, one column per dimension), and a projector/ folder
        that TensorBoard's Embedding Projector opens as it is (tensors, metadata, sprite, config).
inspect prints the load report (items per class, resolution, skipped files with reasons) and
        exits non-zero only when nothing could be loaded.

Exit status: 0 done, 1 the work failed, 2 a bad command line.`

/** A bad command line: the CLI prints it with the usage line and exits 2. */
export class UsageError extends Error {}

type Values = Record<string, string | boolean | string[] | undefined>

/** A numeric option, checked: whole numbers where `integer`, within [min, max]; undefined when absent. */
function numberOption(values: Values, name: string, min: number, max: number, integer = false): number | undefined {
  const raw = values[name]
  if (raw === undefined) return undefined
  const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : Number.NaN
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min || value > max) {
    throw new UsageError(`--${name} must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max} (got ${JSON.stringify(raw)})`)
  }
  return value
}

/** --kl-weight z_l=4 (repeatable) as {z_l: 4}. */
function klWeightsOption(values: Values): Record<string, number> | undefined {
  const raw = values['kl-weight']
  if (raw === undefined) return undefined
  const weights: Record<string, number> = {}
  for (const entry of Array.isArray(raw) ? raw : [String(raw)]) {
    const [, space, value] = /^([A-Za-z_][A-Za-z0-9_]{0,31})=(.+)$/.exec(entry) ?? []
    const weight = value === undefined ? Number.NaN : Number(value)
    if (space === undefined || !Number.isFinite(weight) || weight < 0 || weight > 100)
      throw new UsageError(`--kl-weight must be SPACE=W with W from 0 to 100, e.g. z_l=4 (got ${JSON.stringify(entry)})`)
    weights[space] = weight
  }
  return weights
}

function bar(fraction: number, width = 28): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width)
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`
}

/**
 * One line of progress: redrawn in place on a terminal, and on anything else (a log file, CI)
 * written as plain lines, one per 10% at most, so that logs carry no carriage-return frames.
 */
function progressLine(): { update(text: string, fraction?: number): void; done(text: string): void } {
  const terminal = process.stdout.isTTY === true
  let shown = false
  let lastDecile = -1
  return {
    update(text, fraction) {
      if (terminal) {
        process.stdout.write(`\r${text}\x1b[K`)
        shown = true
        return
      }
      const decile = fraction === undefined ? -2 : Math.floor(fraction * 10)
      if (decile !== lastDecile) console.log(text)
      lastDecile = decile
    },
    done(text) {
      if (terminal && shown) process.stdout.write('\r\x1b[K')
      shown = false
      lastDecile = -1
      console.log(text)
    }
  }
}

function clock(seconds: number | null): string {
  if (seconds === null || !Number.isFinite(seconds)) return '--:--'
  const s = Math.round(seconds)
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`
}

export function formatReport(report: LoadReport, dataset: Pick<ImageDataset, 'classNames'>): string {
  const lines = [
    `source     ${report.source} (${report.layout})`,
    `items      ${report.itemCount}`,
    `resolution ${report.width}x${report.height}, ${report.channels === 1 ? 'grayscale' : 'RGB'} (from ${report.sourceSizes})`
  ]
  if (report.classCounts.length) {
    lines.push('classes')
    report.classCounts.forEach((count, i) => lines.push(`  ${dataset.classNames[i] ?? i}: ${count}`))
  } else lines.push('classes    none (unlabelled)')
  for (const note of report.notes) lines.push(`note       ${note}`)
  if (report.skipped.length) {
    lines.push(`skipped    ${report.skipped.length} file(s)`)
    for (const s of report.skipped) lines.push(`  ${s.path}: ${s.reason}`)
  }
  lines.push(`loaded in  ${report.seconds.toFixed(2)} s`)
  return lines.join('\n')
}

async function diagnose(values: Values): Promise<number> {
  const report = await doctor({ benchSeconds: numberOption(values, 'bench-seconds', 0, 120) ?? 10, includeSoftware: values['include-software'] === true })
  console.log(values.json ? JSON.stringify(report, null, 1) : formatDoctor(report))
  return 0
}

async function exportRun(values: Values): Promise<number> {
  if (typeof values.run !== 'string' || typeof values.out !== 'string') throw new UsageError('export needs --run <run folder> and --out <folder>')
  const formats = String(values.format ?? EXPORT_FORMAT_NAMES.join(',')).split(',')
  for (const f of formats)
    if (!(EXPORT_FORMAT_NAMES as readonly string[]).includes(f))
      throw new UsageError(`--format takes ${EXPORT_FORMAT_NAMES.join(', ')} (comma-separated), not "${f}"`)
  const folder = new RunFolder(resolve(values.run))
  const record = await folder.readRecord()
  const { count, latents } = await folder.readLatents()
  const dataset = isGeneratedSource(record.dataset)
    ? await loadDefaultDataset()
    : await loadDataset(record.dataset, { cacheDir: join(defaultDataDir(), 'cache') })
  if (dataset.split.length !== count) throw new Error(`the latents hold ${count} items, the dataset at ${record.dataset} now ${dataset.split.length}`)
  // The maps stored with the run (the app writes them as it makes them).
  const maps = new Map<string, { components: number; values: Float32Array }>()
  for (const space of latents.keys()) {
    const projection = await folder.readProjection(space)
    if (projection && projection.n === count) maps.set(space, { components: projection.nComponents, values: projection.embedding })
  }
  const out = resolve(values.out)
  let model: { model: VaeFamilyModel; runJson: string } | undefined
  if (formats.includes('model')) model = { model: (await openStoredRun(folder)).model, runJson: await folder.recordText() }
  const files = await writeExports(out, { dataset, latents, maps, model }, [...new Set(formats)] as ExportFormatName[])
  model?.model.dispose()
  console.log(`wrote ${files.length} files to ${out}:\n  ${files.join('\n  ')}`)
  return 0
}

async function inspect(values: Values): Promise<number> {
  if (typeof values.data !== 'string') throw new UsageError('inspect needs --data <folder>')
  const dataset = await loadDataset(values.data, { size: numberOption(values, 'size', 8, 256, true), cacheDir: join(defaultDataDir(), 'cache') })
  console.log(formatReport(dataset.report, dataset))
  return dataset.split.length > 0 ? 0 : 1
}

async function train(values: Values): Promise<number> {
  if (typeof values.out !== 'string' || (typeof values.data !== 'string' && !values.resume)) throw new UsageError('train needs --data <folder> and --out <dir>')
  const family = (values.model ?? 'vae') as ModelFamily
  if (!['vae', 'srvae', 'cdvae'].includes(family)) throw new UsageError(`--model must be vae, srvae or cdvae (got ${family})`)
  const backendName = String(values.backend ?? 'auto')
  if (!(BACKEND_PREFERENCES as readonly string[]).includes(backendName))
    throw new UsageError(`--backend must be one of ${BACKEND_PREFERENCES.join(', ')} (got ${backendName})`)
  // Every option is checked before anything loads or trains.
  const asked = {
    epochs: numberOption(values, 'epochs', 1, 10_000, true),
    batchSize: numberOption(values, 'batch', 1, 4096, true),
    learningRate: numberOption(values, 'lr', 1e-7, 1),
    seed: numberOption(values, 'seed', 0, 2 ** 31 - 1, true),
    latentDim: numberOption(values, 'latent', 2, 512, true),
    maxTrainItems: numberOption(values, 'max-items', 16, 100_000_000, true),
    classPriorRadius: numberOption(values, 'prior-radius', 0.5, 20)
  }
  const objective = {
    klWeights: klWeightsOption(values),
    freeBits: numberOption(values, 'free-bits', 0, 10),
    warmupSteps: numberOption(values, 'warmup', 0, 10_000_000, true),
    freeSpaceIndependence: numberOption(values, 'independence', 0, 1000),
    freeSpaceAdversary: numberOption(values, 'adversary', 0, 1000)
  }
  const backend = await selectBackend(backendName as BackendPreference)
  console.log(`backend: ${backend.backend}${describeBackends(backend) ? ` (${describeBackends(backend)})` : ''}`)
  const folder = new RunFolder(resolve(values.out))
  await folder.create()
  // --resume continues the run in --out as it was started: its options, its item cap, its model
  // (--epochs alone may change, to train a finished run further).
  const resumable = values.resume ? await readResumable(folder, asked.epochs) : null
  if (resumable?.finished) {
    console.log(
      `${folder.dir} is finished (${resumable.position.epoch} of ${resumable.options.epochs} epochs): nothing to resume; --epochs N trains it further`
    )
    return 0
  }
  const progress = progressLine()
  progress.update('loading…')
  const dataPath = typeof values.data === 'string' ? resolve(values.data) : (resumable?.record.dataset as string)
  const dataset = await loadDataset(dataPath, { cacheDir: join(defaultDataDir(), 'cache') }, (p) =>
    progress.update(`loading ${bar(p.done / Math.max(1, p.total))} ${p.done}/${p.total}`, p.done / Math.max(1, p.total))
  )
  progress.done(`${dataset.name}: ${dataset.split.length} items, ${dataset.width}x${dataset.height}x${dataset.channels}, ${dataset.classNames.length} classes`)

  let run: TrainingRun
  if (resumable) {
    run = await resumeRun(resumable, dataset, backend.backend)
    const { position } = resumable
    console.log(`resuming at epoch ${position.epoch + 1} of ${run.epochs}, step ${position.stepInEpoch + 1} of ${run.trainer.stepsPerEpoch}`)
  } else {
    const args: TrainArgs = { family, ...asked, conditionalPrior: values['conditional-prior'] === true, objective }
    run = await startRun(folder, dataset, args, backend.backend)
  }
  const { trainer } = run
  const options = run.record.options
  console.log(
    `${run.model.config.family}: ${run.model.parameters.count()} parameters; ${options.epochs} epochs of ${trainer.stepsPerEpoch} steps (batch ${options.batchSize}); training on ${describeTrainer(trainer, backend.backend)}`
  )
  console.log(`objective: ${describeObjective(run.model.config.objective)}`)
  const { outcome, message } = await run.train({
    onStep: (p) => {
      const done = (p.epoch * p.stepsPerEpoch + p.stepInEpoch) / (p.epochs * p.stepsPerEpoch)
      progress.update(
        `${bar(done)} ${(done * 100).toFixed(0).padStart(3)}% epoch ${p.epoch + 1}/${p.epochs} loss ${p.loss.toFixed(2)} ${Math.round(p.itemsPerSecond)} img/s ETA ${clock(p.etaSeconds)}`,
        done
      )
    },
    onEpoch: (summary) => {
      const terms = Object.entries(summary.heldOut)
        .map(([k, v]) => `${k} ${v.toFixed(k === 'bits_per_dim' ? 4 : 2)}`)
        .join(', ')
      progress.done(`epoch ${summary.epoch}: held-out ${terms} (${summary.seconds.toFixed(1)} s)`)
      console.log(`  ${describeHealth(summary.health)}`)
    }
  })
  if (outcome !== 'completed') throw new Error(message)
  progress.update('encoding every item…')
  const { latents } = await encodeAndStore(folder, run.model, dataset)
  progress.update('measuring the latent spaces…')
  const metrics = await measureAndStore(folder, run.model, dataset, latents)
  progress.done(describeMetrics(metrics))
  console.log(`wrote ${folder.dir}: checkpoint, history.json, metrics.json, ${[...latents.keys()].map((k) => `latents-${k}.f32`).join(', ')}`)
  return 0
}

/** One line: each space's KL and active units. */
function describeHealth(health: LatentHealth): string {
  return Object.entries(health)
    .map(([space, h]) => `${space}: KL ${h.klPerDim.reduce((sum, v) => sum + v, 0).toFixed(2)} nats, ${h.activeUnits}/${h.klPerDim.length} active`)
    .join(' · ')
}

function describeMetrics(metrics: ModelMetrics): string {
  const lines = [`latent health  ${describeHealth(metrics.health)}`]
  const knn = Object.entries(metrics.knn5)
  if (knn.length)
    lines.push(
      `5-NN class     ${knn.map(([space, v]) => `${space} ${(v * 100).toFixed(1)}%`).join(' · ')}${metrics.chance === null ? '' : ` (chance ${(metrics.chance * 100).toFixed(1)}%)`}`
    )
  if (metrics.freeClassifierAccuracy !== null) lines.push(`free classifier ${(metrics.freeClassifierAccuracy * 100).toFixed(1)}% held-out`)
  if (metrics.iwae) {
    const { samples, items, negLogLikelihood, standardError, bitsPerDim } = metrics.iwae
    lines.push(
      `-log p(x)      <= ${negLogLikelihood.toFixed(2)} ± ${standardError.toFixed(2)} nats (${bitsPerDim.toFixed(4)} bits/dim), importance-weighted bound, K = ${samples}, ${items} held-out items; -ELBO ${(metrics.heldOut.total ?? Number.NaN).toFixed(2)}`
    )
  }
  for (const warning of metrics.warnings) lines.push(`warning: ${warning}`)
  return lines.join('\n')
}

export async function main(argv: string[]): Promise<number> {
  try {
    return await run(argv)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    console.error(`cartographer: ${error.message}\n(cartographer --help shows every option)`)
    return 2
  }
}

async function run(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE)
    return 0
  }
  if (command === '--version' || command === '-v') {
    console.log(ENGINE_VERSION)
    return 0
  }
  if (!['train', 'inspect', 'doctor', 'export'].includes(command)) throw new UsageError(`unknown command "${command}": train, inspect, export or doctor`)
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(USAGE)
    return 0
  }
  let values: Values
  try {
    values = parseArgs({ args: rest, options: OPTIONS, allowPositionals: false }).values
  } catch (error) {
    // parseArgs names the option it could not take ("Unknown option '--foo'").
    throw new UsageError((error as Error).message)
  }
  if (command === 'doctor') return diagnose(values)
  if (command === 'export') return exportRun(values)
  return command === 'train' ? train(values) : inspect(values)
}

const OPTIONS = {
  data: { type: 'string' },
  out: { type: 'string' },
  model: { type: 'string' },
  epochs: { type: 'string' },
  latent: { type: 'string' },
  batch: { type: 'string' },
  lr: { type: 'string' },
  seed: { type: 'string' },
  size: { type: 'string' },
  backend: { type: 'string' },
  'max-items': { type: 'string' },
  'kl-weight': { type: 'string', multiple: true },
  'free-bits': { type: 'string' },
  warmup: { type: 'string' },
  independence: { type: 'string' },
  adversary: { type: 'string' },
  'prior-radius': { type: 'string' },
  'conditional-prior': { type: 'boolean' },
  resume: { type: 'boolean' },
  json: { type: 'boolean' },
  'bench-seconds': { type: 'string' },
  'include-software': { type: 'boolean' },
  run: { type: 'string' },
  format: { type: 'string' }
} as const

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: Error) => {
      console.error(`\ncartographer: ${error.message}`)
      process.exit(1)
    }
  )
}
