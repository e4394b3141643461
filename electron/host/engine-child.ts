// The engine as a Node child process, with request/response matching: used by the browser-mode
// host (and by the CLI-free end-to-end tests through it). Electron's main process has its own
// equivalent over utilityProcess.
import { fork, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import type { EventMessage, RequestMessage, ResponseMessage } from '../common/contract'

export class EngineChild {
  private readonly child: ChildProcess
  private nextId = 1
  private readonly pending = new Map<number, (response: ResponseMessage) => void>()
  private readonly eventListeners = new Set<(event: EventMessage) => void>()

  constructor(env: NodeJS.ProcessEnv = {}) {
    this.child = fork(join(__dirname, 'engine.js'), [], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.child.on('message', (message: ResponseMessage | EventMessage) => {
      if (message.type === 'response') {
        this.pending.get(message.id)?.(message)
        this.pending.delete(message.id)
      } else {
        for (const listener of this.eventListeners) listener(message)
      }
    })
    this.child.on('exit', (code, signal) => {
      const error = `the engine process stopped (${signal ?? `exit code ${code}`})`
      for (const [id, resolve] of this.pending) resolve({ type: 'response', id, ok: false, error })
      this.pending.clear()
      for (const listener of this.eventListeners) listener({ type: 'event', name: 'status', payload: { phase: 'error', message: error, progress: null, etaSeconds: null, backend: '-' } })
    })
  }

  /** Sends a (validated) request and resolves with the engine's response, whatever its id was. */
  request(message: RequestMessage): Promise<ResponseMessage> {
    const id = this.nextId++
    return new Promise((resolve) => {
      this.pending.set(id, (response) => resolve({ ...response, id: message.id }))
      this.child.send({ ...message, id })
    })
  }

  onEvent(listener: (event: EventMessage) => void): () => void {
    this.eventListeners.add(listener)
    return () => this.eventListeners.delete(listener)
  }

  kill(): void {
    this.child.kill()
  }
}
