// The renderer's side of the contract: the same EngineClient over Electron IPC (the preload's
// `window.cartographer`) or over the browser-mode host's WebSocket.
import type { EngineClient, EventMessage, RequestArgs, RequestName, RequestResult, ResponseMessage } from '../../../electron/common/contract'
import { PendingReplies } from '../../../electron/common/replies'

interface PreloadBridge {
  mode: 'electron'
  request(name: string, args: unknown): Promise<ResponseMessage>
  onEvent(listener: (message: EventMessage) => void): () => void
  pathForFile(file: File): string
}

declare global {
  interface Window {
    cartographer?: PreloadBridge
  }
}

function unwrap<T>(response: ResponseMessage): T {
  if (!response.ok) throw new Error(response.error)
  return response.result as T
}

class ElectronClient implements EngineClient {
  readonly mode = 'electron'
  constructor(private readonly bridge: PreloadBridge) {}
  async request<N extends RequestName>(name: N, args: RequestArgs<N>): Promise<RequestResult<N>> {
    return unwrap(await this.bridge.request(name, args))
  }
  onEvent(listener: (message: EventMessage) => void): () => void {
    return this.bridge.onEvent(listener)
  }
}

class WebSocketClient implements EngineClient {
  readonly mode = 'browser'
  private readonly socket: WebSocket
  private readonly opened: Promise<void>
  private readonly replies = new PendingReplies<ResponseMessage>()
  private readonly listeners = new Set<(message: EventMessage) => void>()

  constructor(url: string) {
    this.socket = new WebSocket(url)
    this.opened = new Promise((resolve, reject) => {
      this.socket.addEventListener('open', () => resolve(), { once: true })
      this.socket.addEventListener('error', () => reject(new Error('cannot reach the engine (is the host still running?)')), { once: true })
    })
    this.socket.addEventListener('message', (event) => {
      const message = JSON.parse(String(event.data)) as ResponseMessage | EventMessage
      if (message.type === 'response') this.replies.settle(message.id, message)
      else for (const listener of this.listeners) listener(message)
    })
    this.socket.addEventListener('close', () => {
      this.replies.failAll((id) => ({ type: 'response', id, ok: false, error: 'the connection to the engine closed' }))
      for (const listener of this.listeners)
        listener({
          type: 'event',
          name: 'status',
          payload: { phase: 'error', message: 'disconnected from the engine: restart it and reload', progress: null, etaSeconds: null, backend: '-' }
        })
    })
  }

  async request<N extends RequestName>(name: N, args: RequestArgs<N>): Promise<RequestResult<N>> {
    await this.opened
    const { id, reply } = this.replies.issue()
    this.socket.send(JSON.stringify({ type: 'request', id, name, args }))
    return unwrap(await reply)
  }

  onEvent(listener: (message: EventMessage) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
}

/** Electron's path of a dropped file or folder; null in a browser, which is never told it. */
export function pathForDroppedFile(): ((file: File) => string) | null {
  const bridge = window.cartographer
  return bridge ? (file) => bridge.pathForFile(file) : null
}

export function createClient(): EngineClient {
  if (window.cartographer) return new ElectronClient(window.cartographer)
  const token = new URLSearchParams(location.search).get('token') ?? ''
  return new WebSocketClient(`ws://${location.host}/engine?token=${encodeURIComponent(token)}`)
}
