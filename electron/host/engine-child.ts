// The engine as a Node child process for the browser-mode host, with id-matched replies. An engine
// that dies (killed, crashed, out of memory) fails the requests it held, is started again, and the
// host's listeners hear of it (`onRestart`): the window then says so and re-attaches. Electron's
// main process does the same over utilityProcess.
import { fork, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import type { EventMessage, RequestMessage, ResponseMessage } from '../common/contract'
import { PendingReplies } from '../common/replies'

/** More restarts than this within RESTART_WINDOW_MS: the engine stays down (a crash loop). */
const MAX_RESTARTS = 5
const RESTART_WINDOW_MS = 60_000

export class EngineChild {
  private child: ChildProcess | null = null
  private readonly replies = new PendingReplies<ResponseMessage>()
  private readonly eventListeners = new Set<(event: EventMessage) => void>()
  private readonly restartListeners = new Set<(reason: string) => void>()
  private restarts: number[] = []
  private stopped = false

  constructor(private readonly env: NodeJS.ProcessEnv = {}) {
    this.start()
  }

  private start(): void {
    const child = fork(join(__dirname, 'engine.js'), [], { env: { ...process.env, ...this.env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    this.child = child
    child.on('message', (message: ResponseMessage | EventMessage) => {
      if (message?.type === 'response') this.replies.settle(message.id, message)
      else if (message?.type === 'event') for (const listener of this.eventListeners) listener(message)
    })
    // A failed send (the channel closed under it) must not take the host down: exit follows.
    child.on('error', () => undefined)
    child.on('exit', (code, signal) => {
      if (this.child !== child) return
      this.child = null
      const reason = `the engine process stopped (${signal ?? `exit code ${code}`})`
      this.replies.failAll((id) => ({ type: 'response', id, ok: false, error: reason }))
      if (this.stopped) return
      const now = Date.now()
      this.restarts = this.restarts.filter((t) => now - t < RESTART_WINDOW_MS)
      if (this.restarts.length >= MAX_RESTARTS) {
        this.broadcastStatus(`${reason}; it stopped ${MAX_RESTARTS} times within a minute and is not restarted: restart the app`)
        return
      }
      this.restarts.push(now)
      this.start()
      for (const listener of this.restartListeners) listener(`${reason} and was restarted: what it held (dataset, model, a training run) must be opened again`)
    })
  }

  private broadcastStatus(message: string): void {
    for (const listener of this.eventListeners)
      listener({ type: 'event', name: 'status', payload: { phase: 'error', message, progress: null, etaSeconds: null, backend: '-' } })
  }

  /** Sends a (validated) request and resolves with the engine's response, under the caller's id. */
  async request(message: RequestMessage): Promise<ResponseMessage> {
    const child = this.child
    if (!child || !child.connected) return { type: 'response', id: message.id, ok: false, error: 'the engine is not running' }
    const { id, reply } = this.replies.issue()
    try {
      child.send({ ...message, id })
    } catch (error) {
      this.replies.settle(id, { type: 'response', id, ok: false, error: `the engine could not be reached: ${(error as Error).message}` })
    }
    return { ...(await reply), id: message.id }
  }

  onEvent(listener: (event: EventMessage) => void): () => void {
    this.eventListeners.add(listener)
    return () => this.eventListeners.delete(listener)
  }

  /** `listener(reason)` after the engine died and a new one started. */
  onRestart(listener: (reason: string) => void): () => void {
    this.restartListeners.add(listener)
    return () => this.restartListeners.delete(listener)
  }

  /** The engine's process id (tests kill it). */
  get pid(): number | undefined {
    return this.child?.pid
  }

  kill(): void {
    this.stopped = true
    this.child?.kill()
  }
}
