// Browser mode: the same UI and the same engine, with a loopback WebSocket in place of Electron
// IPC. Used where Electron cannot start (a server, a container, this project's CI), and by the
// end-to-end tests. It binds to 127.0.0.1 only and requires a random per-run token, both on the
// page URL and on the WebSocket, and checks the WebSocket's Origin against its own address.
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { readFile } from 'node:fs/promises'
import { extname, join, normalize, sep } from 'node:path'
import { WebSocketServer, type WebSocket } from 'ws'
import { describeRequestError, requestIdOf, validateRequest, type EventMessage, type ResponseMessage } from '../common/contract'
import { EngineChild } from './engine-child'

const HOST = '127.0.0.1'
const RENDERER_DIR = join(__dirname, '..', 'renderer')

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
  '.json': 'application/json'
}

// The same policy as the desktop window's, plus the WebSocket back to this host.
const contentSecurityPolicy = (port: number) =>
  `default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self' ws://${HOST}:${port}; object-src 'none'; base-uri 'none'; frame-ancestors 'none'`

function sameToken(given: string | null, token: string): boolean {
  if (!given || given.length !== token.length) return false
  return timingSafeEqual(Buffer.from(given), Buffer.from(token))
}

export interface HostOptions {
  port?: number
  token?: string
  env?: NodeJS.ProcessEnv
}

export interface RunningHost {
  url: string
  port: number
  token: string
  /** The engine process's id (tests kill it to check the host survives). */
  enginePid(): number | undefined
  close(): Promise<void>
}

/**
 * The path and query of a request target, or null when it is not a well-formed one ("%", "//x"
 * and the like: new URL and decodeURIComponent throw on them, which must never reach the server).
 */
function parseTarget(target: string | undefined): { pathname: string; token: string | null } | null {
  try {
    if (!target || !target.startsWith('/') || target.startsWith('//')) return null
    const url = new URL(target, `http://${HOST}`)
    return { pathname: decodeURIComponent(url.pathname), token: url.searchParams.get('token') }
  } catch {
    return null
  }
}

/** Largest request body the host reads (a WebSocket frame): beyond it the socket is closed with 1009. */
const MAX_FRAME_BYTES = 1 << 20

export async function startHost(options: HostOptions = {}): Promise<RunningHost> {
  const token = options.token ?? randomBytes(24).toString('hex')
  const engine = new EngineChild(options.env)
  let port = 0

  const serveFile = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const headers = { 'Content-Security-Policy': contentSecurityPolicy(port), 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' }
    const target = parseTarget(req.url)
    if (!target) {
      res.writeHead(400, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' }).end('bad request\n')
      return
    }
    if (target.pathname === '/' || target.pathname === '/index.html') {
      if (!sameToken(target.token, token)) {
        res.writeHead(403, { ...headers, 'Content-Type': 'text/plain; charset=utf-8' })
        res.end("Latent Cartographer: open the address printed in the terminal; it carries this run's token.\n")
        return
      }
    }
    const relative = target.pathname === '/' ? 'index.html' : target.pathname.replace(/^\/+/, '')
    const path = normalize(join(RENDERER_DIR, relative))
    if (!path.startsWith(RENDERER_DIR + sep) || relative.includes('\0')) {
      res.writeHead(404, headers).end()
      return
    }
    try {
      const body = await readFile(path)
      res.writeHead(200, { ...headers, 'Content-Type': CONTENT_TYPES[extname(path)] ?? 'application/octet-stream' })
      res.end(body)
    } catch {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' }).end('not found')
    }
  }

  const server = createServer((req, res) => {
    // Whatever a request holds, it gets an answer and the host stays up.
    serveFile(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500)
      res.end()
    })
  })
  // Malformed HTTP (bad headers, oversized requests): answered 400 by the socket, never thrown.
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n')
    else socket.destroy()
  })

  const sockets = new Set<WebSocket>()
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES })
  server.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy())
    const target = parseTarget(req.url)
    const originOk = req.headers.origin === `http://${HOST}:${port}`
    if (!target || target.pathname !== '/engine' || !sameToken(target.token, token) || !originOk) {
      socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n')
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws))
  })

  const send = (ws: WebSocket, text: string) => {
    if (ws.readyState === ws.OPEN) ws.send(text, () => undefined)
  }

  wss.on('connection', (ws: WebSocket) => {
    sockets.add(ws)
    ws.on('close', () => sockets.delete(ws))
    // An oversized frame (1009) or a text frame that is not UTF-8 (1007): ws closes the socket
    // and reports it here; the page reconnects.
    ws.on('error', () => ws.terminate())
    ws.on('message', async (data, isBinary) => {
      let id = -1
      try {
        if (isBinary) throw new SyntaxError('requests are JSON text frames')
        const parsed: unknown = JSON.parse(String(data))
        id = requestIdOf(parsed)
        const response = await engine.request(validateRequest(parsed))
        send(ws, JSON.stringify(response))
      } catch (error) {
        const response: ResponseMessage = { type: 'response', id, ok: false, error: describeRequestError(error) }
        send(ws, JSON.stringify(response))
      }
    })
  })

  engine.onEvent((event: EventMessage) => {
    const text = JSON.stringify(event)
    for (const ws of sockets) send(ws, text)
  })
  engine.onRestart((reason) => {
    const text = JSON.stringify({ type: 'event', name: 'engine.restarted', payload: { reason } } satisfies EventMessage<'engine.restarted'>)
    for (const ws of sockets) send(ws, text)
  })

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, HOST, () => resolve())
  })
  const address = server.address()
  port = typeof address === 'object' && address ? address.port : 0
  return {
    url: `http://${HOST}:${port}/?token=${token}`,
    port,
    token,
    enginePid: () => engine.pid,
    close: async () => {
      for (const ws of sockets) ws.close()
      wss.close()
      engine.kill()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

// Run directly: `node out/main/host.js [--port N]`.
if (require.main === module) {
  const portArg = process.argv.indexOf('--port')
  const port = portArg > 0 ? Number(process.argv[portArg + 1]) : Number(process.env.CARTOGRAPHER_PORT ?? 5178)
  const start = (p: number) =>
    startHost({ port: p }).then((host) => {
      console.log(`Latent Cartographer (browser mode) is serving on ${host.url}`)
      console.log("Open that address in Chromium or Chrome; it carries this run's token. Ctrl+C stops it.")
      const stop = () => void host.close().then(() => process.exit(0))
      process.on('SIGINT', stop)
      process.on('SIGTERM', stop)
    })
  start(port).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'EADDRINUSE') {
      console.log(`port ${port} is busy; choosing a free one`)
      return start(0)
    }
    throw error
  })
}
