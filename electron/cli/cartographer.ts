// `npx cartographer`: headless training (for a GPU server) and dataset inspection. What `train`
// writes (run.json, a tfjs-format checkpoint, history.json, latents) is what the app writes too.
import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { createModel, type ModelFamily } from '../../models/index'
import { restoreCheckpoint, restoreOptimizerState, serializeCheckpoint } from '../../models/checkpoint'
import { defaultTrainOptions, type EpochSummary, type Trainer } from '../../models/train'
import { describeBackends, selectBackend, type BackendPreference } from '../engine/backend'
import { createTrainer, describeTrainer } from '../engine/parallel-trainer'
import { loadDataset } from '../engine/datasets/index'
import type { ImageDataset, LoadReport } from '../engine/datasets/types'
import { defaultDataDir, encodeAll, modelConfigFor, trainingData, writeLatents } from '../engine/runs'
import { loadLatestCheckpoint, saveCheckpoint, writeFileAtomic } from '../engine/storage'

const USAGE = `Latent Cartographer, headless

  cartographer train --data <folder> --out <dir> [--model vae|srvae|cdvae] [--epochs N]
                     [--latent D] [--batch B] [--lr L] [--seed S] [--max-items N]
                     [--backend auto|tensorflow-gpu|tensorflow|wasm|cpu] [--resume]
  cartographer inspect --data <folder> [--size S]

train   trains a model and writes run.json, checkpoint files, history.json and latents-*.f32
        into --out; --resume continues from the last checkpoint in --out.
inspect prints the load report (items per class, resolution, skipped files with reasons) and
        exits non-zero only when nothing could be loaded.`

function bar(fraction: number, width = 28): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width)
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`
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

async function inspect(values: Record<string, string | boolean | undefined>): Promise<number> {
  if (typeof values.data !== 'string') throw new Error('inspect needs --data <folder>')
  const dataset = await loadDataset(values.data, { size: values.size ? Number(values.size) : undefined, cacheDir: join(defaultDataDir(), 'cache') })
  console.log(formatReport(dataset.report, dataset))
  return dataset.split.length > 0 ? 0 : 1
}

async function train(values: Record<string, string | boolean | undefined>): Promise<number> {
  if (typeof values.data !== 'string' || typeof values.out !== 'string') throw new Error('train needs --data <folder> and --out <dir>')
  const family = (values.model ?? 'vae') as ModelFamily
  if (!['vae', 'srvae', 'cdvae'].includes(family)) throw new Error(`--model must be vae, srvae or cdvae (got ${family})`)
  const backend = await selectBackend((values.backend ?? 'auto') as BackendPreference)
  console.log(`backend: ${backend.backend}${describeBackends(backend) ? ` (${describeBackends(backend)})` : ''}`)
  const outDir = resolve(values.out)
  await mkdir(outDir, { recursive: true })
  process.stdout.write('loading…')
  const dataset = await loadDataset(values.data, { cacheDir: join(defaultDataDir(), 'cache') }, (p) => process.stdout.write(`\rloading ${bar(p.done / Math.max(1, p.total))} ${p.done}/${p.total}`))
  console.log(`\r${dataset.name}: ${dataset.split.length} items, ${dataset.width}x${dataset.height}x${dataset.channels}, ${dataset.classNames.length} classes`)

  const data = trainingData(dataset, values['max-items'] ? Number(values['max-items']) : undefined)
  const defaults = defaultTrainOptions(data.trainIndices.length)
  const options = {
    ...defaults,
    epochs: values.epochs ? Number(values.epochs) : defaults.epochs,
    batchSize: values.batch ? Number(values.batch) : defaults.batchSize,
    learningRate: values.lr ? Number(values.lr) : defaults.learningRate,
    seed: values.seed ? Number(values.seed) : defaults.seed
  }
  const saved = values.resume ? await loadLatestCheckpoint(outDir) : null
  if (values.resume && !saved) throw new Error(`--resume: no checkpoint in ${outDir}`)
  const config = saved ? saved.document.config : modelConfigFor(dataset, family, { seed: options.seed, latentDim: values.latent ? Number(values.latent) : undefined })
  const history: EpochSummary[] = saved ? ((saved.document.meta.history as EpochSummary[] | undefined) ?? []) : []
  let trainer: Trainer
  if (saved) {
    trainer = createTrainer(await restoreCheckpoint(saved), data, options, backend.backend)
    await restoreOptimizerState(saved, trainer.optimizer)
    trainer.position = saved.document.position ?? trainer.position
    console.log(`resuming at epoch ${trainer.position.epoch + 1}, step ${trainer.position.stepInEpoch + 1}`)
  } else {
    trainer = createTrainer(createModel(config), data, options, backend.backend)
    await writeFileAtomic(join(outDir, 'run.json'), JSON.stringify({ config, options, dataset: dataset.report.source }, null, 1))
  }
  console.log(`${config.family}: ${trainer.model.parameters.count()} parameters; ${options.epochs} epochs of ${trainer.stepsPerEpoch} steps (batch ${options.batchSize}); training on ${describeTrainer(trainer, backend.backend)}`)
  await trainer.run({
    onStep: (p) => {
      const done = (p.epoch * p.stepsPerEpoch + p.stepInEpoch) / (p.epochs * p.stepsPerEpoch)
      process.stdout.write(`\r${bar(done)} ${(done * 100).toFixed(0).padStart(3)}% epoch ${p.epoch + 1}/${p.epochs} loss ${p.loss.toFixed(2)} ${Math.round(p.itemsPerSecond)} img/s ETA ${clock(p.etaSeconds)}   `)
    },
    onEpoch: (summary) => {
      history.push(summary)
      const terms = Object.entries(summary.heldOut).map(([k, v]) => `${k} ${v.toFixed(k === 'bits_per_dim' ? 4 : 2)}`).join(', ')
      console.log(`\nepoch ${summary.epoch}: held-out ${terms} (${summary.seconds.toFixed(1)} s)`)
    },
    onCheckpoint: async (position) => {
      const serialized = await serializeCheckpoint(trainer.model, trainer.optimizer, position, { history })
      await saveCheckpoint(outDir, serialized, position.globalStep)
    }
  })
  await writeFileAtomic(join(outDir, 'history.json'), JSON.stringify(history, null, 1))
  process.stdout.write('encoding every item…')
  const latents = await encodeAll(trainer.model, dataset)
  await writeLatents(outDir, latents, dataset.split.length)
  console.log(`\rwrote ${outDir}: checkpoint, history.json, ${[...latents.keys()].map((k) => `latents-${k}.f32`).join(', ')}`)
  return 0
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  const { values } = parseArgs({
    args: rest,
    options: {
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
      resume: { type: 'boolean' }
    },
    allowPositionals: false
  })
  if (command === 'train') return train(values)
  if (command === 'inspect') return inspect(values)
  console.log(USAGE)
  return command === undefined || command === 'help' || command === '--help' ? 0 : 2
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error: Error) => {
      console.error(`\ncartographer: ${error.message}`)
      process.exit(1)
    }
  )
}
