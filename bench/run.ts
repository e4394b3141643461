// `npm run bench`: the figures the project tracks, written to bench/results.json (one key per
// figure, its unit in the name) and bench/results.md (a table). Ratios are against references
// measured in the same run on the same machine: PyTorch (../shared/bench/torch_reference.py) for
// training, plain umap-js for the projection.
//
//   npm run bench                 everything (about 35 minutes on 2 cores)
//   npm run bench -- --quick      a smoke run: fewer steps and epochs (figures not comparable)
//   npm run bench -- --only throughput,projection,rendering,quality
//                                 some sections; prints them and writes bench/results.partial.json
//                                 (results.json and results.md always hold one whole run)
import { spawnSync } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import * as tf from '@tensorflow/tfjs'
import { createModel, defaultModelConfig, type ModelFamily, type VaeFamilyModel } from '../models/index'
import { evaluate, Trainer, type TrainOptions } from '../models/train'
import type { TrainingData } from '../models/data'
import { makeBatch } from '../models/data'
import { describeBackends, selectBackend } from '../electron/engine/backend'
import { loadDataset } from '../electron/engine/datasets/index'
import { encodeAll, trainingData } from '../electron/engine/runs'
import { ParallelTrainer } from '../electron/engine/parallel-trainer'
import { knnClassAccuracy, trustworthiness } from '../electron/engine/projection'
import { runProjection } from '../electron/engine/projection-runner'
import { measureRendering } from './render'

const quick = process.argv.includes('--quick')
const SECTIONS = ['rendering', 'throughput', 'quality', 'projection'] as const
type Section = (typeof SECTIONS)[number]
const onlyIndex = process.argv.indexOf('--only')
const only: Set<Section> | null = onlyIndex < 0 ? null : new Set(process.argv[onlyIndex + 1].split(',').map((name) => {
  if (!(SECTIONS as readonly string[]).includes(name)) throw new Error(`--only: unknown section "${name}" (${SECTIONS.join(', ')})`)
  return name as Section
}))
const wanted = (section: Section): boolean => only === null || only.has(section)
const FASHION = '/usr/share/datasets/fashion-mnist'
const PEER = join(__dirname, '..', '..', 'shared', 'bench', 'torch_reference.py')
const results: Record<string, number | string> = {}
const rows: string[][] = []

function record(key: string, value: number | string, label: string, reference?: string): void {
  results[key] = typeof value === 'number' ? Number(value.toPrecision(6)) : value
  rows.push([label, typeof value === 'number' ? value.toLocaleString('en', { maximumFractionDigits: 3 }) : value, reference ?? '', key])
  console.log(`${key}: ${value}`)
}

function runPeer(args: string[]): Record<string, number> | null {
  if (!existsSync(PEER)) return null
  const result = spawnSync('/usr/bin/python3', [PEER, ...args], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1' } })
  if (result.status !== 0) {
    console.log(`PyTorch peer failed: ${result.stderr.split('\n').slice(-3).join(' ')}`)
    return null
  }
  return JSON.parse(result.stdout.trim().split('\n').pop() as string)
}

function referenceModel(seed = 0): VaeFamilyModel {
  // The reference model of ../shared/bench/README.md: conv32 s2, conv64 s2, dense 16-d, mirrored
  // decoder, Bernoulli likelihood. defaultModelConfig builds exactly this for 28x28x1.
  return createModel(defaultModelConfig('vae', { height: 28, width: 28, channels: 1 }, 0, { latentDims: { z: 16 }, seed }))
}

/** The training worker: the built one (`npm run bench` builds first), else its source through tsx. */
function trainWorkerSpawn(): () => Worker {
  const built = join(__dirname, '..', 'out', 'main', 'train-worker.js')
  if (existsSync(built)) return () => new Worker(built)
  const hook = require.resolve('tsx/cjs')
  const source = join(__dirname, '..', 'electron', 'engine', 'train-worker.ts')
  return () => new Worker(`require(${JSON.stringify(hook)}); require(${JSON.stringify(source)})`, { eval: true })
}

/** The trainer the app runs on this backend (createTrainer's choice, with the worker found from here). */
function appTrainer(model: VaeFamilyModel, data: TrainingData, options: TrainOptions): { trainer: Trainer; description: string } {
  const backend = tf.getBackend()
  if ((backend === 'wasm' || backend === 'cpu') && availableParallelism() >= 2) {
    const trainer = new ParallelTrainer(model, data, options, { spawn: trainWorkerSpawn() })
    return { trainer, description: trainer.description }
  }
  return { trainer: new Trainer(model, data, options), description: backend }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((p, q) => p - q)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

async function throughput(data: TrainingData): Promise<void> {
  const options = { epochs: 1, batchSize: 128, learningRate: 1e-3, seed: 0, checkpointEverySteps: 1e9 }
  const unlabelled = { ...data, labels: null }
  const steps = quick ? 8 : 30
  // This machine's speed drifts by 2x within minutes (a shared host), and PyTorch and wasm feel it
  // differently; so the three are measured in alternating rounds and compared by their medians.
  const rounds = quick ? 1 : 5
  const batch = (i: number) => data.trainIndices.subarray((i % 8) * 128, (i % 8 + 1) * 128)

  // One thread: the in-process Trainer (what tfjs-node would run, and wasm on one core).
  const model = referenceModel()
  const trainer = new Trainer(model, unlabelled, options)
  // Data-parallel over worker threads (what the app and the CLI run on wasm/cpu with 2+ cores).
  const parallelModel = referenceModel()
  const parallel = new ParallelTrainer(parallelModel, unlabelled, options, { spawn: trainWorkerSpawn() })
  await parallel.start()
  // Steady state is what a run of hundreds of steps sees. Fresh worker threads need ~20 steps to
  // get there (each isolate JIT-compiles tfjs and tiers up the wasm code, on the same two cores);
  // a one-thread trainer reaches it in a few.
  for (let i = 0; i < (quick ? 3 : 20); i++) {
    trainer.step(batch(i), i)
    await parallel.trainStep(batch(i), i)
  }
  const one: number[] = []
  const two: number[] = []
  const peer: number[] = []
  // PyTorch on one thread too: how far two threads get beyond one on this machine, for PyTorch's
  // own kernels, says what the data-parallel trainer can be asked to do here.
  const peerOne: number[] = []
  for (let round = 0; round < rounds; round++) {
    let started = performance.now()
    for (let i = 0; i < steps; i++) trainer.step(batch(i), i)
    one.push((steps * 128) / ((performance.now() - started) / 1000))
    started = performance.now()
    for (let i = 0; i < steps; i++) await parallel.trainStep(batch(i), i)
    // The last step's update is still on its way to the workers: wait for it (a weights round trip).
    await parallel.replicaWeights()
    two.push((steps * 128) / ((performance.now() - started) / 1000))
    const result = runPeer(['throughput', '--steps', quick ? '10' : '40'])
    if (result) peer.push(result.images_per_second)
    const resultOne = runPeer(['throughput', '--steps', quick ? '10' : '30', '--threads', '1'])
    if (resultOne) peerOne.push(resultOne.images_per_second)
    console.log(
      `throughput round ${round + 1}/${rounds}: 1 thread ${one[round].toFixed(0)}, ${parallel.description} ${two[round].toFixed(0)}, ` +
        `PyTorch ${resultOne?.images_per_second ?? '-'} (1 thread) / ${result?.images_per_second ?? '-'} (2 threads) img/s`
    )
  }
  record('train_reference_images_per_second', median(one), `reference VAE training, ${tf.getBackend()}, 1 thread, batch 128, median of ${rounds} rounds (img/s)`)
  record('train_reference_parallel_images_per_second', median(two), `reference VAE training, ${parallel.description} (data-parallel), batch 128 (img/s)`)
  await parallel.stop()
  parallel.dispose()
  parallelModel.dispose()
  trainer.optimizer.dispose()
  model.dispose()
  if (peer.length > 0) {
    const ratios = two.map((v, k) => v / peer[k])
    record('pytorch_reference_images_per_second', median(peer), `PyTorch 1.13 CPU, same model, 2 threads, median of ${peer.length} rounds (img/s)`)
    record('train_reference_ratio_to_pytorch', median(one) / median(peer), 'ratio to PyTorch, 1 thread')
    record('train_reference_parallel_ratio_to_pytorch', median(two) / median(peer), 'ratio to PyTorch, data-parallel', 'goal >= 0.5')
    record('train_reference_parallel_ratio_to_pytorch_range', `${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}`, 'the same ratio, lowest and highest round')
  }
  if (peerOne.length > 0) {
    record('pytorch_reference_one_thread_images_per_second', median(peerOne), `PyTorch, same model, 1 thread, median of ${peerOne.length} rounds (img/s)`)
    record('train_reference_one_thread_ratio_to_pytorch_one_thread', median(one) / median(peerOne), 'ratio to PyTorch, both on 1 thread (kernel speed per core)')
    record('train_reference_two_thread_speedup', median(two) / median(one), 'wasm: 2 threads / 1 thread', peer.length > 0 ? `PyTorch: ${(median(peer) / median(peerOne)).toFixed(2)}` : undefined)
    if (peer.length > 0) record('pytorch_reference_two_thread_speedup', median(peer) / median(peerOne), 'PyTorch: 2 threads / 1 thread')
  }
}

async function referenceQuality(data: TrainingData, epochsOverride?: number): Promise<VaeFamilyModel> {
  const epochs = epochsOverride ?? (quick ? 1 : 5)
  const model = referenceModel()
  const { trainer, description } = appTrainer(model, data, { epochs, batchSize: 128, learningRate: 1e-3, seed: 0, checkpointEverySteps: 1e9 })
  const started = performance.now()
  await trainer.run()
  record('reference_train_seconds', (performance.now() - started) / 1000, `reference VAE, ${epochs} epochs of 60k, ${description} (s)`)
  const heldOut = await evaluate(model, data, data.heldOutIndices, 1000, 0)
  record('reference_test_neg_elbo_nats', heldOut.total, `reference VAE held-out -ELBO after ${epochs} epochs (nats)`)
  record('reference_test_kl_nats', heldOut.kl_z, 'reference VAE held-out KL (nats)')
  const peer = quick || epochsOverride !== undefined ? null : runPeer(['quality', '--epochs', String(epochs)])
  if (peer) {
    record('pytorch_reference_test_neg_elbo_nats', peer.test_neg_elbo_nats, 'PyTorch, same model and epochs (nats)')
    record('pytorch_reference_train_seconds', peer.train_seconds, 'PyTorch training time (s)')
    record('reference_neg_elbo_relative_difference', (heldOut.total - peer.test_neg_elbo_nats) / peer.test_neg_elbo_nats, 'relative difference to PyTorch', 'goal within +-0.02')
  }
  trainer.optimizer.dispose()
  return model
}

/** An independent classifier of real images (conv net trained on the training set). */
async function trainClassifier(data: TrainingData, numClasses: number): Promise<(x: tf.Tensor4D) => tf.Tensor1D> {
  const net = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 16, kernelSize: 3, strides: 2, activation: 'relu', padding: 'same' }),
      tf.layers.conv2d({ filters: 32, kernelSize: 3, strides: 2, activation: 'relu', padding: 'same' }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 64, activation: 'relu' }),
      tf.layers.dense({ units: numClasses })
    ]
  })
  const optimizer = tf.train.adam(1e-3)
  const indices = data.trainIndices
  for (let epoch = 0; epoch < (quick ? 1 : 2); epoch++) {
    for (let from = 0; from < indices.length; from += 128) {
      const batch = makeBatch(data, indices.subarray(from, from + 128))
      optimizer.minimize(() => tf.losses.softmaxCrossEntropy(tf.oneHot(batch.labels!.toInt(), numClasses), net.apply(batch.x) as tf.Tensor2D) as tf.Scalar)
      tf.dispose([batch.x, batch.labels!])
    }
  }
  const test = makeBatch(data, data.heldOutIndices)
  const accuracy = tf.tidy(() => (net.apply(test.x) as tf.Tensor2D).argMax(1).equal(test.labels!.toInt()).mean().dataSync()[0])
  tf.dispose([test.x, test.labels!])
  record('classifier_real_test_accuracy', accuracy, 'independent classifier on real held-out images')
  return (x) => tf.tidy(() => (net.apply(x) as tf.Tensor2D).argMax(1) as tf.Tensor1D)
}

async function familyQuality(family: ModelFamily, data: TrainingData, numClasses: number, classify: (x: tf.Tensor4D) => tf.Tensor1D): Promise<void> {
  const epochs = quick ? 1 : 3
  const model = createModel(defaultModelConfig(family, data.shape, numClasses, { seed: 0 }))
  const { trainer, description } = appTrainer(model, data, { epochs, batchSize: 128, learningRate: 1e-3, seed: 0, checkpointEverySteps: 1e9 })
  const started = performance.now()
  await trainer.run()
  record(`${family}_train_seconds`, (performance.now() - started) / 1000, `${family.toUpperCase()} ${epochs} epochs of 60k, ${description} (s)`)
  const heldOut = await evaluate(model, data, data.heldOutIndices, 1000, 0)
  for (const [term, value] of Object.entries(heldOut)) {
    const unit = term === 'bits_per_dim' ? '' : '_nats'
    record(`${family}_test_${term}${unit}`, value, `${family.toUpperCase()} held-out ${term}${unit ? ' (nats)' : ''}`)
  }
  if (family === 'cdvae') {
    const test = makeBatch(data, data.heldOutIndices)
    const free = tf.tidy(() => model.classLogLikelihoods(test.x)!.argMax(1).equal(test.labels!.toInt()).mean().dataSync()[0])
    tf.dispose([test.x, test.labels!])
    record('cdvae_free_classifier_test_accuracy', free, 'CDVAE free classifier argmax_c log p(mu_l(x)|c), held-out')
    let hits = 0
    const perClass = 200
    for (let c = 0; c < numClasses; c++) {
      const predicted = tf.tidy(() => classify(model.sample(perClass, { classIndex: c, seed: 100 + c }).x).dataSync())
      hits += predicted.filter((p) => p === c).length
    }
    record('cdvae_generated_class_accuracy', hits / (perClass * numClasses), 'images from p(z_l|c) recognised as c by the independent classifier')
  }
  trainer.optimizer.dispose()
  model.dispose()
}

async function projection(model: VaeFamilyModel, dataset: Awaited<ReturnType<typeof loadDataset>>): Promise<void> {
  const train = Array.from(dataset.split.keys()).filter((i) => dataset.split[i] === 0)
  const latents = (await encodeAll(model, dataset)).get('z')!
  const n = quick ? 10_000 : 60_000
  const values = new Float32Array(n * 16)
  const labels = new Int32Array(n)
  train.slice(0, n).forEach((item, i) => {
    values.set(latents.values.subarray(item * 16, item * 16 + 16), i * 16)
    labels[i] = dataset.labels![item]
  })
  if (global.gc) global.gc()
  const baseline = process.memoryUsage().rss
  let peak = baseline
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50)
  const started = performance.now()
  let firstFrame: number | null = null
  let layoutStarted: number | null = null
  // The app's route: the built projection worker (out/main/projection-worker.js), which starts
  // its own layout thread, as in the app.
  const worker = join(__dirname, '..', 'out', 'main', 'projection-worker.js')
  if (!existsSync(worker)) throw new Error(`${worker} is missing: npm run bench builds it first`)
  const result = await runProjection(values, 16, { nComponents: 3 }, (frame) => {
    if (frame.embedding && firstFrame === null) firstFrame = (performance.now() - started) / 1000
    if (frame.phase === 'layout' && layoutStarted === null) layoutStarted = performance.now()
  }, new AbortController().signal, worker)
  const ended = performance.now()
  const seconds = (ended - started) / 1000
  clearInterval(sampler)
  peak = Math.max(peak, process.memoryUsage().rss)
  const prefix = quick ? 'umap_10k' : 'umap_60k'
  record(`${prefix}_seconds`, seconds, `UMAP of ${n.toLocaleString('en')} 16-d latents to 3D (s)`, 'goal <= 20 at 60k')
  record(`${prefix}_peak_extra_mb`, (peak - baseline) / 2 ** 20, 'its extra peak resident memory (MB)', 'goal <= 600')
  record('umap_first_frame_seconds', firstFrame ?? seconds, 'first intermediate frame (s)', 'goal <= 3')
  if (layoutStarted !== null) {
    record(`${prefix}_layout_seconds`, (ended - layoutStarted) / 1000, 'of which the layout (s)')
  }
  const sample = 2000
  record('umap_trustworthiness_k15', trustworthiness(values, 16, result.embedding, 3, 15, sample), 'trustworthiness k=15 (sampled)')
  record('umap_knn5_accuracy_3d', knnClassAccuracy(result.embedding, 3, labels, 5, sample), '5-NN class accuracy in the 3D map (sampled)')
  record('latent_knn5_accuracy_16d', knnClassAccuracy(values, 16, labels, 5, sample), '5-NN class accuracy in the 16-d latent space (sampled)')
}

async function rendering(): Promise<void> {
  for (const figures of await measureRendering(quick ? [60_000] : [60_000, 200_000])) {
    const k = `${figures.n / 1000}k`
    record(`render_${k}_fps`, figures.fps, `map of ${figures.n.toLocaleString('en')} points orbiting, ${figures.renderer.includes('SwiftShader') ? 'SwiftShader' : figures.renderer}, ${figures.drawnWhileMoving.toLocaleString('en')} drawn while moving (fps)`)
    record(`render_${k}_all_points_fps`, figures.fullFps, 'the same orbit drawing every point on every frame (fps)')
    record(`render_${k}_drawn_while_moving`, figures.drawnWhileMoving, 'points drawn per frame while the camera moves')
    record(`pick_${k}_after_new_points_ms`, figures.pickAfterNewPointsMs, 'first pick after new points (builds the 3D pick grid) (ms)')
    record(`pick_${k}_after_move_ms`, figures.pickAfterMoveMs, 'first pick after the camera moved (ms)', 'goal <= 2')
    record(`pick_${k}_still_median_ms`, figures.pickStillMedianMs, 'pick on a still camera, median (ms)', 'goal <= 2')
    record(`pick_${k}_still_p95_ms`, figures.pickStillP95Ms, 'pick on a still camera, 95th percentile (ms)', 'goal <= 2')
  }
}

async function main(): Promise<void> {
  const backend = await selectBackend('auto')
  console.log(`backend: ${backend.backend} (${describeBackends(backend)})`)
  results.backend = backend.backend
  results.quick = quick ? 'yes' : 'no'
  results.date = new Date().toISOString()
  if (!existsSync(FASHION)) throw new Error(`${FASHION} is missing: apt-get install dataset-fashion-mnist`)
  if (wanted('rendering')) await rendering()
  const dataset = await loadDataset(FASHION)
  const grey = trainingData(dataset)
  const binary: TrainingData = { ...grey, binarize: true }
  if (wanted('throughput')) await throughput(binary)
  if (wanted('quality') || wanted('projection')) {
    // The projection maps the reference model's latents; a projection-only run trains it for one epoch.
    const reference = await referenceQuality(binary, wanted('quality') ? undefined : 1)
    if (wanted('projection')) await projection(reference, dataset)
    reference.dispose()
  }
  if (wanted('quality')) {
    const classify = await trainClassifier(grey, 10)
    for (const family of ['srvae', 'cdvae'] as ModelFamily[]) await familyQuality(family, grey, 10, classify)
  }

  const out = join(__dirname, only ? 'results.partial.json' : 'results.json')
  writeFileSync(out, JSON.stringify(results, null, 1) + '\n')
  const table = [
    `# Benchmark results (${results.date}, backend ${results.backend}${quick ? ', QUICK run' : ''})`,
    '',
    '| figure | value | goal / reference | key |',
    '| --- | ---: | --- | --- |',
    ...rows.map((r) => `| ${r.map((cell) => cell.replace(/\|/g, '\\|')).join(' | ')} |`)
  ].join('\n')
  if (!only) writeFileSync(join(__dirname, 'results.md'), table + '\n')
  console.log(`\n${table}\n\nwrote ${out}${only ? '' : ' and bench/results.md'}`)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
