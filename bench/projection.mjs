#!/usr/bin/env node
// Benchmark of electron/engine/projection/index.ts against plain umap-js (and, optionally, the
// `embedding-atlas` WebAssembly UMAP), in separate child processes so that each route's peak
// memory is its own.
//
//   node bench/projection.mjs                      60k synthetic 16-d latents (10 clusters)
//   node bench/projection.mjs --fmnist             Fashion-MNIST projected on its first 16 PCs
//   node bench/projection.mjs --latents f.f32 --dim 16 [--labels l.i32]
//                                                  any raw little-endian float32 file (n*dim),
//                                                  labels as raw int32 (optional)
// Options: --n N (default 60000) --compare-n N (umap-js size, default 10000; 0 skips it)
//          --embedding-atlas DIR (a node_modules/embedding-atlas folder to measure as well)
//          --sample Q (query points for the quality measures, default 500) --epochs E
//          --layout-threads T (ours: layout threads; default: the projection's own choice)
//          --routes ours@60000,umap-js@10000,embedding-atlas@60000 (explicit list of runs)
//          --save-latents FILE [--save-only] (write the generated latents, and FILE.labels.i32)
//
// Per route it prints: seconds to the first frame (first embedding a viewer could draw),
// seconds to the first frame that came out of the layout optimisation, total seconds, CPU
// seconds (the machine is shared: wall time is noisy, CPU time less so), the CPU seconds other
// processes used meanwhile (otherCpuS, from /proc/stat: well above 0, the run was disturbed;
// on a 2-core machine, otherCpuS close to totalS means a whole core was taken), peak extra RSS
// (VmHWM after resetting it through /proc/self/clear_refs, else sampled RSS), and quality:
// leave-one-out 5-NN label accuracy of the map (if labels) and trustworthiness (k = 15).
//
// The TypeScript sources are transpiled with the repo's `typescript` into
// node_modules/.cache/latent-cartographer-bench/ on every run (takes ~1 s).

import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync, rmSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { gunzipSync } from 'node:zlib'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const cacheDir = join(root, 'node_modules', '.cache', 'latent-cartographer-bench')

function parseArgs(argv) {
  const a = {}
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]
    if (!k.startsWith('--')) continue
    const next = argv[i + 1]
    if (next === undefined || next.startsWith('--')) a[k.slice(2)] = true
    else {
      a[k.slice(2)] = next
      i++
    }
  }
  return a
}

// ---------------------------------------------------------------------------------------------
// Build: transpile the projection module (and its helpers) to .mjs next to node_modules.

async function buildModule() {
  const ts = (await import('typescript')).default
  mkdirSync(cacheDir, { recursive: true })
  // parallel.mjs starts layout-worker.mjs from beside itself for the layout threads.
  const sources = [
    ...['index', 'cancel', 'knn', 'nndescent', 'umap', 'parallel', 'layout-worker'].map((name) => ['projection', name]),
    ['.', 'worker-path'],
    ['workers', 'channel'],
    ['../common', 'replies']
  ]
  for (const [folder, name] of sources) {
    const src = readFileSync(join(root, 'electron', 'engine', folder, `${name}.ts`), 'utf8')
    let out = ts.transpileModule(src, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false }
    }).outputText
    // Every module lands in one folder: './knn', '../worker-path' and '../workers/channel' all become siblings.
    out = out.replace(
      /from '(?:\.\.?\/)+(?:workers\/|common\/)?(index|cancel|knn|nndescent|umap|parallel|layout-worker|worker-path|channel|replies)'/g,
      "from './$1.mjs'"
    )
    writeFileSync(join(cacheDir, `${name}.mjs`), out)
  }
  return pathToFileURL(join(cacheDir, 'index.mjs')).href
}

// ---------------------------------------------------------------------------------------------
// Data.

function rng(seed) {
  let s = seed >>> 0 || 1
  const next = () => {
    s ^= s << 13
    s ^= s >>> 17
    s ^= s << 5
    return (s >>> 0) / 4294967296
  }
  const gauss = () => Math.sqrt(-2 * Math.log(next() + 1e-12)) * Math.cos(2 * Math.PI * next())
  return { next, gauss }
}

/** Latent-like synthetic data: 10 classes, each a Gaussian blob with its own width, on a curved
 *  1-d manifold for half of them, with 4 dimensions that are nearly inactive (like a VAE's
 *  collapsed dimensions). Labels are the classes. */
function syntheticLatents(n, dim, seed = 7) {
  const r = rng(seed)
  const C = 10
  const centres = Array.from({ length: C }, () => Array.from({ length: dim }, () => r.gauss() * 1.2))
  const x = new Float32Array(n * dim)
  const labels = new Int32Array(n)
  for (let i = 0; i < n; i++) {
    const c = Math.floor(r.next() * C)
    labels[i] = c
    const width = 0.35 + 0.5 * (c / C)
    const t = r.gauss()
    for (let d = 0; d < dim; d++) {
      let v = centres[c][d] + r.gauss() * width
      if (c % 2 === 0 && d < 2) v += d === 0 ? Math.cos(t) * 1.5 : Math.sin(t) * 1.5 // curved classes
      if (d >= dim - 4) v = r.gauss() * 0.05 // inactive dimensions
      x[i * dim + d] = v
    }
  }
  return { x, labels, dim, name: `synthetic ${n} x ${dim}, 10 classes` }
}

function readIdx(path) {
  const buf = gunzipSync(readFileSync(path))
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
  const nd = buf[3]
  const dims = []
  for (let i = 0; i < nd; i++) dims.push(view.getUint32(4 + 4 * i, false))
  return { dims, data: buf.subarray(4 + 4 * nd) }
}

/** Fashion-MNIST train set projected on its first 16 principal components (tfjs wasm). */
async function fmnistLatents(n, dim) {
  const dir = '/usr/share/datasets/fashion-mnist'
  const imgs = readIdx(join(dir, 'train-images-idx3-ubyte.gz'))
  const labs = readIdx(join(dir, 'train-labels-idx1-ubyte.gz'))
  const N = Math.min(n, imgs.dims[0])
  const D = imgs.dims[1] * imgs.dims[2]
  const tf = await import('@tensorflow/tfjs')
  await import('@tensorflow/tfjs-backend-wasm')
  await tf.setBackend('wasm')
  await tf.ready()
  const X = new Float32Array(N * D)
  for (let i = 0; i < N * D; i++) X[i] = imgs.data[i] / 255
  const mean = new Float32Array(D)
  for (let i = 0; i < N; i++) for (let d = 0; d < D; d++) mean[d] += X[i * D + d]
  for (let d = 0; d < D; d++) mean[d] /= N
  for (let i = 0; i < N; i++) for (let d = 0; d < D; d++) X[i * D + d] -= mean[d]
  const S = Math.min(N, 10000)
  const C = tf.tidy(() => {
    const xs = tf.tensor2d(X.subarray(0, S * D), [S, D])
    return tf.matMul(tf.transpose(xs), xs)
  })
  // Subspace iteration for the top `dim` eigenvectors of C.
  const r = rng(3)
  let V = new Float32Array(D * dim).map(() => r.gauss())
  for (let it = 0; it < 60; it++) {
    const W = tf.tidy(() => tf.matMul(C, tf.tensor2d(V, [D, dim])).dataSync())
    V = gramSchmidt(Float32Array.from(W), D, dim)
  }
  const Z = tf.tidy(() => tf.matMul(tf.tensor2d(X, [N, D]), tf.tensor2d(V, [D, dim])).dataSync())
  C.dispose()
  const labels = new Int32Array(N)
  for (let i = 0; i < N; i++) labels[i] = labs.data[i]
  return { x: Float32Array.from(Z), labels, dim, name: `Fashion-MNIST ${N} x PCA-${dim}` }
}

function gramSchmidt(W, D, k) {
  for (let c = 0; c < k; c++) {
    for (let p = 0; p < c; p++) {
      let dot = 0
      for (let d = 0; d < D; d++) dot += W[d * k + c] * W[d * k + p]
      for (let d = 0; d < D; d++) W[d * k + c] -= dot * W[d * k + p]
    }
    let norm = 0
    for (let d = 0; d < D; d++) norm += W[d * k + c] ** 2
    norm = Math.sqrt(norm) || 1
    for (let d = 0; d < D; d++) W[d * k + c] /= norm
  }
  return W
}

// ---------------------------------------------------------------------------------------------
// Memory: peak RSS through VmHWM (reset via clear_refs) where Linux allows it, else sampling.

function readHwmBytes() {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))
    return m ? Number(m[1]) * 1024 : null
  } catch {
    return null
  }
}

function startMemoryWatch() {
  let hwmOk = false
  try {
    writeFileSync('/proc/self/clear_refs', '5')
    hwmOk = readHwmBytes() !== null
  } catch {
    hwmOk = false
  }
  const base = process.memoryUsage().rss
  let peak = base
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss)
  }, 10)
  return {
    stop() {
      clearInterval(timer)
      peak = Math.max(peak, process.memoryUsage().rss)
      const hwm = hwmOk ? readHwmBytes() : null
      return { extraMB: ((hwm !== null ? Math.max(hwm, peak) : peak) - base) / 1e6, method: hwm !== null ? 'VmHWM' : 'sampled' }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Child: run one route on the latents file, print one JSON line.

async function child(args) {
  const dim = Number(args.dim)
  const x = new Float32Array(readFileSync(args.data).buffer.slice(0))
  const n = Math.min(Number(args.n), x.length / dim)
  const latents = x.subarray(0, n * dim)
  const labels = args.labels ? new Int32Array(readFileSync(args.labels).buffer.slice(0)).subarray(0, n) : null
  const route = args.route
  const mod = await import(args.module)
  if (route === 'ours') {
    // The engine runs with the wasm backend initialised: do the same (before the baseline).
    const tf = await import('@tensorflow/tfjs')
    await import('@tensorflow/tfjs-backend-wasm')
    await tf.setBackend('wasm')
    await tf.ready()
  }
  let umapjs = null
  let atlas = null
  if (route === 'umap-js') umapjs = await import('umap-js')
  if (route === 'embedding-atlas') atlas = await import(pathToFileURL(join(args.atlas, 'dist', 'umap.js')).href)
  global.gc?.()
  const mem = startMemoryWatch()
  const busy0 = machineBusySeconds()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  let firstFrame = null
  let firstLayoutFrame = null
  let frames = 0
  let embedding
  let nComp = 3
  let extra = {}
  if (route === 'ours') {
    const opts = {}
    if (args.epochs) opts.nEpochs = Number(args.epochs)
    if (args['layout-threads']) opts.layoutThreads = Number(args['layout-threads'])
    const p = await mod.LatentProjection.fit(latents, dim, opts, (ev) => {
      if (!ev.embedding) return
      frames++
      const t = (performance.now() - t0) / 1000
      if (firstFrame === null) firstFrame = t
      if (firstLayoutFrame === null && ev.phase === 'layout') firstLayoutFrame = t
    })
    embedding = p.embedding
    extra = { stats: p.stats, epochs: p.options.nEpochs }
    // transform of 100 points (an interpolation path between two items)
    const path = new Float32Array(100 * dim)
    for (let s = 0; s < 100; s++) for (let d = 0; d < dim; d++) path[s * dim + d] = latents[d] + (s / 99) * (latents[(n - 1) * dim + d] - latents[d])
    const tt = performance.now()
    p.transform(path)
    extra.transform100ms = Math.round(performance.now() - tt)
    extra.bytes = p.toBytes().length
  } else if (route === 'umap-js') {
    const X = []
    for (let i = 0; i < n; i++) X.push(Array.from(latents.subarray(i * dim, i * dim + dim)))
    const u = new umapjs.UMAP({ nComponents: 3, nNeighbors: 15, minDist: 0.1 })
    const nEpochs = u.initializeFit(X)
    const tInit = (performance.now() - t0) / 1000
    firstFrame = tInit // the random initial layout is available after initializeFit
    let lastYield = performance.now()
    for (let e = 0; e < nEpochs; e++) {
      u.step()
      if (firstLayoutFrame === null) firstLayoutFrame = (performance.now() - t0) / 1000
      if (performance.now() - lastYield > 100) {
        frames++
        await new Promise((r) => setImmediate(r))
        lastYield = performance.now()
      }
    }
    const emb = u.getEmbedding()
    embedding = new Float32Array(n * 3)
    for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) embedding[i * 3 + c] = emb[i][c]
    extra = { epochs: nEpochs, initializeFitS: tInit }
  } else if (route === 'embedding-atlas') {
    const u = await atlas.createUMAP(n, dim, 3, latents, { nNeighbors: 15, minDist: 0.1, seed: 0 })
    firstFrame = (performance.now() - t0) / 1000 // spectral init available after createUMAP
    await u.step(1)
    firstLayoutFrame = (performance.now() - t0) / 1000
    await u.run()
    embedding = Float32Array.from(u.embedding)
    extra = { epochs: u.epoch }
    u.destroy()
  }
  const total = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  const busy1 = machineBusySeconds()
  const m = mem.stop()
  const sample = Number(args.sample ?? 500)
  const quality = {}
  if (labels) quality.knn5Acc = round(mod.knnClassAccuracy(embedding, nComp, labels, 5, sample), 4)
  quality.trustworthiness15 = round(mod.trustworthiness(latents, dim, embedding, nComp, 15, sample), 4)
  if (labels) quality.knn5AccLatents = round(mod.knnClassAccuracy(latents, dim, labels, 5, sample), 4)
  console.log(
    'RESULT ' +
      JSON.stringify({
        route,
        n,
        firstFrameS: round(firstFrame, 2),
        firstLayoutFrameS: round(firstLayoutFrame, 2),
        totalS: round(total, 2),
        cpuS: round((cpu.user + cpu.system) / 1e6, 2),
        otherCpuS: busy0 === null || busy1 === null ? null : round(Math.max(0, busy1 - busy0 - (cpu.user + cpu.system) / 1e6), 2),
        peakExtraMB: Math.round(m.extraMB),
        memMethod: m.method,
        frames,
        ...quality,
        ...extra
      })
  )
}

/** CPU seconds the whole machine has been busy (all cores, /proc/stat), or null. */
function machineBusySeconds() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / 100 // user nice system irq softirq steal, in USER_HZ
  } catch {
    return null
  }
}

function round(v, d) {
  return v === null || v === undefined ? null : Math.round(v * 10 ** d) / 10 ** d
}

// ---------------------------------------------------------------------------------------------
// Parent.

async function main() {
  const args = parseArgs(process.argv.slice(2))
  if (args.child) return child(args)
  const n = Number(args.n ?? 60000)
  const compareN = Number(args['compare-n'] ?? 10000)
  let data
  if (args.latents) {
    const dim = Number(args.dim ?? 16)
    const x = new Float32Array(readFileSync(args.latents).buffer.slice(0))
    const labels = args.labels ? new Int32Array(readFileSync(args.labels).buffer.slice(0)) : null
    data = { x, labels, dim, name: `${args.latents} (${x.length / dim} x ${dim})` }
  } else if (args.fmnist) {
    data = await fmnistLatents(n, Number(args.dim ?? 16))
  } else {
    data = syntheticLatents(n, Number(args.dim ?? 16))
  }
  const moduleUrl = await buildModule()
  const dataFile = join(cacheDir, 'latents.f32')
  const labelsFile = join(cacheDir, 'labels.i32')
  writeFileSync(dataFile, Buffer.from(data.x.buffer, data.x.byteOffset, data.x.byteLength))
  if (data.labels) writeFileSync(labelsFile, Buffer.from(data.labels.buffer, data.labels.byteOffset, data.labels.byteLength))
  const total = data.x.length / data.dim
  if (args['save-latents']) {
    writeFileSync(String(args['save-latents']), Buffer.from(data.x.buffer, data.x.byteOffset, data.x.byteLength))
    if (data.labels)
      writeFileSync(String(args['save-latents']) + '.labels.i32', Buffer.from(data.labels.buffer, data.labels.byteOffset, data.labels.byteLength))
    console.log(`saved ${total} x ${data.dim} latents to ${args['save-latents']}`)
    if (args['save-only']) return
  }
  console.log(`data: ${data.name}; machine: ${process.arch}, node ${process.version}, load ${readLoad()}`)
  let runs = [['ours', Math.min(n, total)]]
  if (compareN > 0) runs.push(['ours', Math.min(compareN, total)], ['umap-js', Math.min(compareN, total)])
  if (args['embedding-atlas']) runs.push(['embedding-atlas', Math.min(compareN || n, total)])
  if (args.routes) {
    runs = String(args.routes)
      .split(',')
      .map((r) => {
        const [route, rn] = r.split('@')
        return [route, Math.min(Number(rn ?? n), total)]
      })
  }
  const results = []
  for (const [route, rn] of runs) {
    const childArgs = [
      '--expose-gc',
      fileURLToPath(import.meta.url),
      '--child',
      '--route',
      route,
      '--n',
      String(rn),
      '--dim',
      String(data.dim),
      '--data',
      dataFile,
      '--module',
      moduleUrl,
      '--sample',
      String(args.sample ?? 500)
    ]
    if (data.labels) childArgs.push('--labels', labelsFile)
    if (args.epochs && route === 'ours') childArgs.push('--epochs', String(args.epochs))
    if (args['layout-threads'] && route === 'ours') childArgs.push('--layout-threads', String(args['layout-threads']))
    if (route === 'embedding-atlas') childArgs.push('--atlas', resolve(String(args['embedding-atlas'])))
    const r = spawnSync(process.execPath, childArgs, { cwd: root, encoding: 'utf8', timeout: 600_000, maxBuffer: 1 << 26 })
    const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('RESULT '))
    if (!line) {
      console.log(`${route} n=${rn}: FAILED (status ${r.status}, signal ${r.signal})\n${(r.stderr ?? '').slice(-2000)}`)
      continue
    }
    const res = JSON.parse(line.slice(7))
    results.push(res)
    console.log(JSON.stringify(res))
  }
  const ours = results.find((r) => r.route === 'ours' && r.n === Math.min(n, total))
  const js = results.find((r) => r.route === 'umap-js')
  if (ours) {
    console.log(
      `\nours @ ${ours.n}: first frame ${ours.firstFrameS} s (first optimised frame ${ours.firstLayoutFrameS} s), ` +
        `total ${ours.totalS} s (cpu ${ours.cpuS} s; other processes ${ours.otherCpuS ?? '?'} s), peak extra RSS ${ours.peakExtraMB} MB`
    )
  }
  if (js) {
    // umap-js is worse than linear in n (its sparse matrices are Map<string, entry>); a linear
    // extrapolation is a lower bound.
    const f = (ours?.n ?? n) / js.n
    console.log(
      `umap-js @ ${js.n}: first frame ${js.firstFrameS} s, total ${js.totalS} s (cpu ${js.cpuS} s), peak extra RSS ${js.peakExtraMB} MB; ` +
        `linear extrapolation to ${ours?.n ?? n}: >= ${round(js.totalS * f, 0)} s, >= ${Math.round(js.peakExtraMB * f)} MB`
    )
  }
  for (const f of [dataFile, labelsFile]) if (existsSync(f)) rmSync(f)
}

function readLoad() {
  try {
    return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')
  } catch {
    return '?'
  }
}

await main()
