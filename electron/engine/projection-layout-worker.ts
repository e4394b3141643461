// One extra thread of the parallel UMAP layout (see projection-parallel.ts). It shares the
// layout's embedding and sampling schedule (SharedArrayBuffers) with the driving thread and, each
// time that thread starts an epoch, claims chunks of that epoch's edges (from the back of the
// edge list, the driving thread claims from the front) and runs the same SGD
// update on them (LayoutOptimizer.runClaimed) until none are left. It loads projection-umap.ts
// only (no tfjs), so it starts in a few tens of milliseconds.
import { parentPort } from 'node:worker_threads'
import { LayoutOptimizer, type LayoutParams, type LayoutSchedule } from './projection-umap'

export type LayoutRequest =
  /** Everything but `params` and `chunkEdges` is backed by SharedArrayBuffers. `claims` counts
   *  the chunks of the current epoch claimed so far (see LayoutOptimizer.runClaimed). */
  | { type: 'start'; embedding: Float32Array; dim: number; schedule: LayoutSchedule; params: LayoutParams; claims: Int32Array; chunkEdges: number }
  /** Take part in epoch `epoch`; `seed` starts this thread's negative-sampling stream for it. */
  | { type: 'epoch'; epoch: number; seed: number }

export type LayoutReply = { type: 'ready' } | { type: 'epoch-done'; epoch: number } | { type: 'error'; message: string }

const port = parentPort
if (!port) throw new Error('projection-layout-worker runs as a worker thread')

let run: { optimizer: LayoutOptimizer; claims: Int32Array; chunkEdges: number } | null = null

port.on('message', (request: LayoutRequest) => {
  try {
    if (request.type === 'start') {
      const { schedule, embedding, dim, params, claims, chunkEdges } = request
      // No Rng: each epoch's seed comes with its request, from a stream of this thread's own that
      // the driving thread derives from the projection's seed.
      const optimizer = new LayoutOptimizer(schedule, embedding, dim, params, null)
      optimizer.privateNegativeSamples()
      run = { optimizer, claims, chunkEdges }
      return
    }
    if (!run) throw new Error('epoch before start')
    run.optimizer.beginEpoch(request.seed)
    run.optimizer.runClaimed(request.epoch, run.claims, run.chunkEdges, true)
    port.postMessage({ type: 'epoch-done', epoch: request.epoch } satisfies LayoutReply)
  } catch (error) {
    port.postMessage({ type: 'error', message: error instanceof Error ? error.message : String(error) } satisfies LayoutReply)
  }
})

port.postMessage({ type: 'ready' } satisfies LayoutReply)
