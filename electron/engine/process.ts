// Entry point of the engine process. The same file runs under Electron's utilityProcess (messages
// on process.parentPort) and under Node's child_process.fork (process.send / 'message'), so the
// desktop app and browser mode run exactly the same engine.
import { describeRequestError, eventMessage, requestIdOf, validateRequest, type EventMessage, type ResponseMessage } from '../common/contract'
import { Engine } from './engine'
import { defaultDataDir } from './run/catalog'
import type { BackendPreference } from './backend/select'

interface ParentChannel {
  send(message: ResponseMessage | EventMessage): void
  onMessage(listener: (message: unknown) => void): void
}

interface ElectronParentPort {
  postMessage(message: unknown): void
  on(event: 'message', listener: (event: { data: unknown }) => void): void
}

function parentChannel(): ParentChannel {
  const electronPort = (process as unknown as { parentPort?: ElectronParentPort }).parentPort
  if (electronPort) {
    return { send: (m) => electronPort.postMessage(m), onMessage: (l) => electronPort.on('message', (e) => l(e.data)) }
  }
  if (process.send) {
    const send = process.send.bind(process)
    return { send: (m) => void send(m), onMessage: (l) => process.on('message', l) }
  }
  throw new Error('the engine runs as a child process (of the desktop app or of the browser-mode host)')
}

const channel = parentChannel()
const engine = new Engine({
  dataDir: defaultDataDir(),
  backend: (process.env.CARTOGRAPHER_BACKEND as BackendPreference | undefined) ?? 'auto',
  emit: (name, payload) => channel.send(eventMessage(name, payload))
})

channel.onMessage(async (raw) => {
  const id = requestIdOf(raw)
  let request
  try {
    // The host already validated it; the engine checks again because it trusts no transport.
    request = validateRequest(raw)
  } catch (error) {
    channel.send({ type: 'response', id, ok: false, error: describeRequestError(error) })
    return
  }
  try {
    channel.send({ type: 'response', id, ok: true, result: await engine.handle(request) })
  } catch (error) {
    channel.send({ type: 'response', id, ok: false, error: error instanceof Error ? error.message : String(error) })
  }
})

process.on('uncaughtException', (error) => {
  channel.send({ type: 'event', name: 'log', payload: { level: 'error', message: `engine: ${error.stack ?? error.message}` } })
})
