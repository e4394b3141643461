// One extra thread of the parallel UMAP layout (see projection-parallel.ts): it owns a contiguous
// piece of the layout's edges and, each time the driving thread asks for an epoch, runs the same
// SGD epoch (LayoutOptimizer.step) on them against the embedding in shared memory that the driving
// thread updates at the same time for its own piece (Hogwild). It loads projection-umap.ts only
// (no tfjs), so it starts in a few tens of milliseconds.
import { parentPort } from 'node:worker_threads'
import { LayoutOptimizer, type LayoutEdges, type LayoutParams } from './projection-umap'

export type LayoutRequest =
  /** `embedding` is backed by a SharedArrayBuffer (n * dim); `edges` are this thread's piece. */
  | { type: 'start'; embedding: Float32Array; dim: number; edges: LayoutEdges; params: LayoutParams }
  /** Run epoch `epoch` (they come in order, one at a time); `seed` starts its negative sampling stream. */
  | { type: 'epoch'; epoch: number; seed: number }

export type LayoutReply = { type: 'ready' } | { type: 'epoch-done'; epoch: number } | { type: 'error'; message: string }

const port = parentPort
if (!port) throw new Error('projection-layout-worker runs as a worker thread')

let optimizer: LayoutOptimizer | null = null
let epochSeed = 1
// LayoutOptimizer draws one number per epoch to seed its negative sampling; the driving thread
// sends it with each epoch, from a stream of its own derived from the projection's seed.
const seeds = { next: (): number => epochSeed }

port.on('message', (request: LayoutRequest) => {
  try {
    if (request.type === 'start') {
      optimizer = new LayoutOptimizer(request.edges, request.embedding, request.dim, request.params, seeds)
      return
    }
    if (!optimizer) throw new Error('epoch before start')
    if (optimizer.epoch !== request.epoch) throw new Error(`asked for epoch ${request.epoch}, at epoch ${optimizer.epoch}`)
    epochSeed = request.seed
    optimizer.step()
    port.postMessage({ type: 'epoch-done', epoch: request.epoch } satisfies LayoutReply)
  } catch (error) {
    port.postMessage({ type: 'error', message: error instanceof Error ? error.message : String(error) } satisfies LayoutReply)
  }
})

port.postMessage({ type: 'ready' } satisfies LayoutReply)
