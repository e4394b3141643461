// Picks the best TensorFlow.js backend that loads in this process, and says why each better one
// was not used: tfjs-node-gpu with a CUDA device, then WebGPU on a hardware adapter (any vendor,
// through Dawn), then tfjs-node, then wasm (with the project's gradient kernels, so conv nets
// train), then the pure-JS cpu backend. A software WebGPU adapter is used only when asked for.
import * as tf from '@tensorflow/tfjs'
import type { BackendChoice } from '../../common/contract'
import { registerWasmKernels } from './wasm-kernels'
import { activateWebGpu, adapterName, probeWebGpu, type AdapterReport } from './webgpu'

export interface BackendSelection {
  backend: string
  choices: BackendChoice[]
  /** The WebGPU adapter, when the backend is webgpu. */
  adapter?: AdapterReport
}

export const BACKEND_PREFERENCES = ['auto', 'tensorflow-gpu', 'webgpu', 'tensorflow', 'wasm', 'cpu'] as const
export type BackendPreference = (typeof BACKEND_PREFERENCES)[number]

/** Backends that run on a GPU: one in-process trainer with GPU-sized batches (see defaultTrainOptions). */
export const isGpuBackend = (backend: string): boolean => backend === 'tfjs-node-gpu' || backend === 'webgpu'

function reasonOf(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error)
  if (/Cannot find (module|package)|ERR_MODULE_NOT_FOUND/.test(text)) return 'not installed'
  if (/libcudart|libcudnn|CUDA/i.test(text)) return `CUDA 11.2 / cuDNN 8.1 libraries not found (${text.split('\n')[0]})`
  return `failed to load: ${text.split('\n')[0]}`
}

async function tryNodeBinding(moduleName: string): Promise<string | null> {
  try {
    await import(/* @vite-ignore */ moduleName)
    return null
  } catch (error) {
    return reasonOf(error)
  }
}

/** Loads and activates a backend; call once per process before building models. */
export async function selectBackend(preference: BackendPreference = 'auto'): Promise<BackendSelection> {
  const choices: BackendChoice[] = []
  const want = (name: BackendPreference) => preference === 'auto' || preference === name

  if (want('tensorflow-gpu')) {
    const failure = await tryNodeBinding('@tensorflow/tfjs-node-gpu')
    if (failure === null && (await tf.setBackend('tensorflow'))) {
      // tfjs-node-gpu falls back to the CPU silently when no device is visible; ask TensorFlow.
      const gpu = process.env.CUDA_VISIBLE_DEVICES !== '-1' && (await hasCudaDevice())
      if (gpu) {
        choices.push({ name: 'tfjs-node-gpu', status: 'used' })
        return { backend: 'tfjs-node-gpu', choices }
      }
      choices.push({ name: 'tfjs-node-gpu', status: 'loaded, but no CUDA device is visible (running on its CPU kernels)' })
      return { backend: 'tfjs-node-gpu (CPU)', choices }
    }
    choices.push({ name: 'tfjs-node-gpu', status: failure ?? 'did not initialise' })
  } else choices.push({ name: 'tfjs-node-gpu', status: 'not requested' })

  if (want('webgpu')) {
    const probe = await probeWebGpu()
    if (!probe.adapter) choices.push({ name: 'webgpu', status: probe.failure ?? 'no adapter' })
    else if (probe.adapter.software && preference !== 'webgpu') {
      choices.push({
        name: 'webgpu',
        status: `only a software adapter (${adapterName(probe.adapter)}): used when asked for (--backend webgpu), never by default`
      })
    } else {
      try {
        const adapter = await activateWebGpu()
        choices.push({ name: 'webgpu', status: 'used' })
        return { backend: 'webgpu', choices, adapter }
      } catch (error) {
        choices.push({ name: 'webgpu', status: `failed to start on ${adapterName(probe.adapter)}: ${(error as Error).message.split('\n')[0]}` })
      }
    }
  } else choices.push({ name: 'webgpu', status: 'not requested' })

  if (want('tensorflow')) {
    const failure = await tryNodeBinding('@tensorflow/tfjs-node')
    if (failure === null && (await tf.setBackend('tensorflow'))) {
      choices.push({ name: 'tfjs-node', status: 'used' })
      return { backend: 'tfjs-node', choices }
    }
    choices.push({ name: 'tfjs-node', status: failure ?? 'did not initialise' })
  } else choices.push({ name: 'tfjs-node', status: 'not requested' })

  if (want('wasm')) {
    try {
      await import('@tensorflow/tfjs-backend-wasm')
      registerWasmKernels()
      if (await tf.setBackend('wasm')) {
        await tf.ready()
        choices.push({ name: 'wasm', status: 'used' })
        return { backend: 'wasm', choices }
      }
      choices.push({ name: 'wasm', status: 'did not initialise' })
    } catch (error) {
      choices.push({ name: 'wasm', status: reasonOf(error) })
    }
  } else choices.push({ name: 'wasm', status: 'not requested' })

  if (preference !== 'auto' && preference !== 'cpu') {
    // A backend asked for by name and not available is an error, not a silent fall to cpu.
    const asked = choices.find((c) => c.status !== 'not requested')
    throw new Error(`the ${preference} backend was asked for but cannot run here: ${asked?.status ?? 'unknown reason'}`)
  }
  await tf.setBackend('cpu')
  choices.push({ name: 'cpu', status: 'used' })
  return { backend: 'cpu', choices }
}

async function hasCudaDevice(): Promise<boolean> {
  try {
    const { execFileSync } = await import('node:child_process')
    const out = execFileSync('nvidia-smi', ['-L'], { timeout: 5000, encoding: 'utf8' })
    return /GPU \d+:/.test(out)
  } catch {
    return false
  }
}

export function describeBackends(selection: BackendSelection): string {
  return selection.choices
    .filter((c) => c.status !== 'used')
    .map((c) => `${c.name}: ${c.status}`)
    .join(' · ')
}
