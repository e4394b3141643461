// UMAP in a worker thread of the engine process: the projection never shares a thread with
// training, so neither stalls the other, and a long projection streams frames while the engine
// keeps answering requests. The worker uses the wasm (or cpu) backend for its neighbour search:
// tfjs-node-gpu stays on the engine's main thread (it is unreliable in workers).
import { parentPort } from 'node:worker_threads'
import * as tf from '@tensorflow/tfjs'
import '@tensorflow/tfjs-backend-wasm'
import { LatentProjection, type ProjectionOptions } from './index'

export type WorkerRequest = { type: 'fit'; latents: Float32Array; dim: number; options: ProjectionOptions } | { type: 'abort' }

export type WorkerReply =
  | { type: 'frame'; embedding: Float32Array | null; fraction: number; phase: string; epoch: number; totalEpochs: number }
  | { type: 'done'; bytes: Uint8Array }
  | { type: 'error'; message: string }

const port = parentPort
if (!port) throw new Error('projection-worker runs as a worker thread')
const abort = new AbortController()

port.on('message', async (request: WorkerRequest) => {
  if (request.type === 'abort') {
    abort.abort(new Error('cancelled'))
    return
  }
  try {
    if (!(await tf.setBackend('wasm').catch(() => false))) await tf.setBackend('cpu')
    await tf.ready()
    const projection = await LatentProjection.fit(
      request.latents,
      request.dim,
      request.options,
      (p) => {
        const reply: WorkerReply = {
          type: 'frame',
          embedding: p.embedding ?? null,
          fraction: p.fraction,
          phase: p.phase,
          epoch: p.epoch,
          totalEpochs: p.totalEpochs
        }
        port.postMessage(reply, p.embedding ? [p.embedding.buffer as ArrayBuffer] : [])
      },
      abort.signal
    )
    const bytes = projection.toBytes()
    port.postMessage({ type: 'done', bytes } satisfies WorkerReply, [bytes.buffer as ArrayBuffer])
  } catch (error) {
    port.postMessage({ type: 'error', message: error instanceof Error ? error.message : String(error) } satisfies WorkerReply)
  }
})
