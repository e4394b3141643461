// Runs a projection in its own worker thread (see projection/worker.ts), or in-process where the
// built worker is not there (unit tests run the TypeScript sources directly).
import { Worker } from 'node:worker_threads'
import { abortReason } from './cancel'
import { LatentProjection, type ProjectionOptions, type ProjectionProgress } from './index'
import type { WorkerReply, WorkerRequest } from './worker'
import { builtWorkerPath } from '../worker-path'

export interface ProjectionFrame {
  embedding: Float32Array | null
  fraction: number
  phase: string
  epoch: number
  totalEpochs: number
}

export async function runProjection(
  latents: Float32Array,
  dim: number,
  options: ProjectionOptions,
  onFrame: (frame: ProjectionFrame) => void,
  signal: AbortSignal,
  /** The worker to run; default: the built one beside this bundle (the benchmark names it). */
  workerPath: string | null = builtWorkerPath('projection-worker', __dirname)
): Promise<LatentProjection> {
  if (!workerPath) {
    return LatentProjection.fit(latents, dim, options, (p: ProjectionProgress) => onFrame({ ...p, embedding: p.embedding ?? null }), signal)
  }
  const worker = new Worker(workerPath)
  try {
    return await new Promise<LatentProjection>((resolve, reject) => {
      const onAbort = () => {
        worker.postMessage({ type: 'abort' } satisfies WorkerRequest)
        reject(abortReason(signal))
      }
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort, { once: true })
      worker.on('message', (reply: WorkerReply) => {
        if (reply.type === 'frame') onFrame(reply)
        else if (reply.type === 'done') resolve(LatentProjection.fromBytes(reply.bytes))
        else reject(new Error(reply.message))
      })
      worker.on('error', reject)
      worker.on('exit', (code) => {
        if (code !== 0) reject(new Error(`the projection worker stopped (exit code ${code})`))
      })
      // A copy goes to the worker: the engine keeps its latents for decoding and neighbours.
      const copy = latents.slice()
      worker.postMessage({ type: 'fit', latents: copy, dim, options } satisfies WorkerRequest, [copy.buffer])
    })
  } finally {
    void worker.terminate()
  }
}
