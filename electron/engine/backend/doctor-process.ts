// The diagnostics as the engine asks for them: `cartographer doctor --json` in a process of its own,
// because it switches TensorFlow.js backends and times training, which must not touch the models
// this engine holds. The built CLI sits beside the engine's bundle (out/main/cli.js).
import { fork } from 'node:child_process'
import type { DoctorReport } from '../../common/contract'
import { builtWorkerPath } from '../worker-path'

export function runDoctor(benchSeconds: number): Promise<DoctorReport> {
  const cli = builtWorkerPath('cli', __dirname)
  if (!cli) return Promise.reject(new Error('the diagnostics need the built app (npm run build)'))
  return new Promise((resolve, reject) => {
    // Under Electron, process.execPath is the app itself: run it as plain Node.
    const child = fork(cli, ['doctor', '--json', '--bench-seconds', String(benchSeconds)], {
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc']
    })
    let out = ''
    let err = ''
    child.stdout?.on('data', (chunk) => (out += chunk))
    child.stderr?.on('data', (chunk) => (err += chunk))
    child.on('error', reject)
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`the diagnostics failed (exit ${code}): ${err.trim().split('\n').slice(-2).join(' ')}`))
      try {
        resolve(JSON.parse(out.slice(out.indexOf('{'))) as DoctorReport)
      } catch (error) {
        reject(new Error(`the diagnostics printed no report: ${(error as Error).message}`))
      }
    })
  })
}
