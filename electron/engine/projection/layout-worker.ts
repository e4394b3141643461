// One extra thread of the parallel UMAP layout (see projection/parallel.ts). It shares the
// layout's embedding and sampling schedule (SharedArrayBuffers) with the driving thread and, each
// time that thread starts an epoch, claims chunks of that epoch's edges (from the back of the
// edge list, the driving thread claims from the front) and runs the same SGD
// update on them (LayoutOptimizer.runClaimed) until none are left.
//
// Before the layout, the same thread helps with the neighbour search (projection/nndescent.ts):
// it is handed the search's shared state once ('knn-start'), then, for each phase the driving
// thread starts ('knn'), it claims trees or row ranges until none are left and answers
// 'knn-done'. Requests and replies travel through workers/channel.ts. It loads projection/umap.ts and projection/nndescent.ts only (no tfjs), so it
// starts in a few tens of milliseconds.
import { parentPort } from 'node:worker_threads'
import { notify, serveRequests } from '../workers/channel'
import { runPhaseItems, type NNDescentPhase, type NNDescentState } from './nndescent'
import { LayoutOptimizer, type LayoutParams, type LayoutSchedule } from './umap'

export type LayoutRequest =
  /** Everything but `params` and `chunkEdges` is backed by SharedArrayBuffers. `claims` counts
   *  the chunks of the current epoch claimed so far (see LayoutOptimizer.runClaimed). */
  | { type: 'start'; embedding: Float32Array; dim: number; schedule: LayoutSchedule; params: LayoutParams; claims: Int32Array; chunkEdges: number }
  /** Take part in epoch `epoch`; `seed` starts this thread's negative-sampling stream for it. */
  | { type: 'epoch'; epoch: number; seed: number }
  /** The neighbour search's state; every typed array in it is backed by a SharedArrayBuffer. */
  | { type: 'knn-start'; state: NNDescentState }
  /** Claim items of this phase of the search until none are left. */
  | { type: 'knn'; phase: NNDescentPhase; ranges: number }

export type LayoutReply = { type: 'ready' } | { type: 'epoch-done'; epoch: number } | { type: 'knn-done'; phase: NNDescentPhase }

const port = parentPort
if (!port) throw new Error('projection-layout-worker runs as a worker thread')

let run: { optimizer: LayoutOptimizer; claims: Int32Array; chunkEdges: number } | null = null
let knn: NNDescentState | null = null

// 'knn' and 'epoch' are answered when done; 'knn-start' and 'start' only hand over state.
serveRequests<LayoutRequest, LayoutReply>(port, (request) => {
  if (request.type === 'knn-start') {
    knn = request.state
    return
  }
  if (request.type === 'knn') {
    if (!knn) throw new Error('knn phase before knn-start')
    runPhaseItems(knn, request.phase, request.ranges)
    return { reply: { type: 'knn-done', phase: request.phase } }
  }
  if (request.type === 'start') {
    const { schedule, embedding, dim, params, claims, chunkEdges } = request
    // No Rng: each epoch's seed comes with its request, from a stream of this thread's own that
    // the driving thread derives from the projection's seed.
    const optimizer = new LayoutOptimizer(schedule, embedding, dim, params, null)
    optimizer.privateNegativeSamples()
    run = { optimizer, claims, chunkEdges }
    knn = null // the search is over: let its memory go
    return
  }
  if (!run) throw new Error('epoch before start')
  run.optimizer.beginEpoch(request.seed)
  run.optimizer.runClaimed(request.epoch, run.claims, run.chunkEdges, true)
  return { reply: { type: 'epoch-done', epoch: request.epoch } }
})

notify<LayoutReply>(port, { type: 'ready' })
