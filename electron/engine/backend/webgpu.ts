// WebGPU in the engine process: Dawn's Node binding (the optional npm package `webgpu`) gives Node a
// navigator.gpu, and @tensorflow/tfjs-backend-webgpu trains on it. Dawn runs on Vulkan (Linux,
// Windows), Metal (macOS) and D3D12 (Windows): any recent GPU, no CUDA. Software adapters
// (SwiftShader, llvmpipe, lavapipe, or any the driver marks as a fallback) check correctness only:
// they are used when asked for by name, never chosen automatically.
import * as tf from '@tensorflow/tfjs'
import type { AdapterReport } from '../../common/contract'

export type { AdapterReport }

export interface WebGpuProbe {
  /** The adapter found, when one was. */
  adapter: AdapterReport | null
  /** Why WebGPU cannot be used, when it cannot: not installed, no adapter, a driver problem. */
  failure: string | null
}

/** The adapter limits worth showing: what bounds the tensors and kernels tfjs can run. */
const KEY_LIMITS = [
  'maxBufferSize',
  'maxStorageBufferBindingSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupsPerDimension'
] as const

const SOFTWARE = /swiftshader|llvmpipe|lavapipe|softpipe|software|basic render/i

interface DawnModule {
  create(options: string[]): GPU
  globals: object
}

let gpu: GPU | null = null
let loadFailure: string | null = null
let adapter: GPUAdapter | null = null

/** Dawn's navigator.gpu for this process, created once (null when the package or its binary is missing). */
async function dawn(): Promise<GPU | null> {
  if (gpu || loadFailure) return gpu
  try {
    // A CommonJS package: its exports sit on the namespace or, through some loaders, on default.
    const module = (await import(/* @vite-ignore */ 'webgpu')) as unknown as Partial<DawnModule> & { default?: DawnModule }
    const binding = (typeof module.create === 'function' ? module : module.default) as DawnModule
    // GPUBufferUsage and the other WebGPU globals tfjs-backend-webgpu reads.
    Object.assign(globalThis, binding.globals)
    gpu = binding.create([])
  } catch (error) {
    const text = error instanceof Error ? error.message : String(error)
    loadFailure = /Cannot find (module|package)|ERR_MODULE_NOT_FOUND/.test(text)
      ? 'the webgpu package is not installed (it is optional)'
      : `Dawn's binary did not load: ${text.split('\n')[0]}`
  }
  return gpu
}

function describe(found: GPUAdapter): AdapterReport {
  const info = found.info
  const text = `${info.vendor} ${info.architecture} ${info.device} ${info.description}`
  const fallback =
    (found as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter ??
    (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter ??
    false
  const limits: Record<string, number> = {}
  for (const name of KEY_LIMITS) limits[name] = Number(found.limits[name])
  return {
    vendor: info.vendor,
    architecture: info.architecture,
    device: info.device,
    description: info.description,
    software: fallback || SOFTWARE.test(text),
    limits,
    features: [...found.features].map(String).sort()
  }
}

/** Finds the WebGPU adapter Dawn offers (the high-performance one), without using it. */
export async function probeWebGpu(): Promise<WebGpuProbe> {
  const entry = await dawn()
  if (!entry) return { adapter: null, failure: loadFailure }
  try {
    adapter ??= await entry.requestAdapter({ powerPreference: 'high-performance' })
  } catch (error) {
    return { adapter: null, failure: `the adapter request failed: ${(error as Error).message}` }
  }
  if (!adapter) {
    return {
      adapter: null,
      failure:
        process.platform === 'linux'
          ? 'no WebGPU adapter: Dawn found no Vulkan device (install the GPU driver with its Vulkan ICD, and libvulkan1)'
          : 'no WebGPU adapter: Dawn found no Metal or D3D12/Vulkan device'
    }
  }
  return { adapter: describe(adapter), failure: null }
}

/**
 * Registers tfjs's webgpu backend on the probed adapter and makes it current. The backend's own
 * factory asks navigator.gpu for an adapter itself; registering ours keeps the adapter this
 * process probed (and judged hardware or software) the one that trains.
 */
export async function activateWebGpu(): Promise<AdapterReport> {
  const probe = await probeWebGpu()
  if (!probe.adapter || !adapter || !gpu) throw new Error(probe.failure ?? 'no WebGPU adapter')
  const chosen = adapter
  // tfjs-backend-webgpu registers itself only where navigator.gpu exists when it is imported.
  const global = globalThis as unknown as { navigator?: { gpu?: GPU } }
  if (!global.navigator?.gpu)
    Object.defineProperty(globalThis, 'navigator', { value: { ...(global.navigator ?? {}), gpu }, configurable: true, writable: true })
  const { WebGPUBackend } = await import('@tensorflow/tfjs-backend-webgpu')
  if (!tf.findBackendFactory('webgpu') || tf.getBackend() !== 'webgpu') {
    tf.removeBackend('webgpu')
    tf.registerBackend(
      'webgpu',
      async () => {
        const limits = chosen.limits
        const device = await chosen.requestDevice({
          requiredFeatures: chosen.features.has('timestamp-query') ? ['timestamp-query'] : [],
          requiredLimits: {
            maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
            maxComputeWorkgroupsPerDimension: limits.maxComputeWorkgroupsPerDimension,
            maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
            maxBufferSize: limits.maxBufferSize,
            maxComputeWorkgroupSizeX: limits.maxComputeWorkgroupSizeX,
            maxComputeInvocationsPerWorkgroup: limits.maxComputeInvocationsPerWorkgroup
          }
        })
        return new WebGPUBackend(device, chosen.info)
      },
      3
    )
  }
  if (!(await tf.setBackend('webgpu'))) throw new Error('the webgpu backend did not initialise')
  await tf.ready()
  return probe.adapter
}

/** "NVIDIA (ampere, NVIDIA GeForce RTX 3060)" or "google swiftshader (software)". */
export function adapterName(report: AdapterReport): string {
  const detail = [report.architecture, report.device || report.description].filter(Boolean).join(', ')
  return `${report.vendor || 'unknown vendor'}${detail ? ` (${detail})` : ''}${report.software ? ', software' : ''}`
}
