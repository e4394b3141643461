// Browser mode under hostile and faulty input (issue 12): malformed HTTP targets and WebSocket
// upgrades, oversized and non-UTF-8 frames, fuzzed messages, and an engine killed mid-training
// whose run is then resumed through the window's contract. Runs the built host (npm test builds).
import { request as httpRequest } from 'node:http'
import { connect } from 'node:net'
import { existsSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { WebSocket } from 'ws'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { EventMessage, ResponseMessage, RunListing } from '../../../electron/common/contract'
import { writeShapesFolder } from '../../../electron/engine/datasets/shapes'

interface RunningHost {
  url: string
  port: number
  token: string
  enginePid(): number | undefined
  close(): Promise<void>
}

const HOST_JS = join(__dirname, '../../../out/main/host.js')

async function startBuiltHost(): Promise<RunningHost> {
  const dataDir = await mkdtemp(join(tmpdir(), 'cartographer-host-test-'))
  const { startHost } = require(HOST_JS) as { startHost(o: object): Promise<RunningHost> }
  return startHost({ env: { CARTOGRAPHER_DATA_DIR: dataDir, CARTOGRAPHER_BACKEND: 'wasm' } })
}

/** A raw HTTP request line (no client-side URL parsing), answered with the status code. */
function rawGet(port: number, target: string, headers: string[] = []): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () =>
      socket.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${headers.map((h) => `${h}\r\n`).join('')}Connection: close\r\n\r\n`)
    )
    let text = ''
    socket.on('data', (chunk) => (text += chunk.toString('latin1')))
    socket.on('end', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)))
    socket.on('error', reject)
  })
}

function getStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    httpRequest(url, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    })
      .on('error', reject)
      .end()
  })
}

/** A WebSocket client of the host: requests by name, and every event it hears. */
class Client {
  readonly events: EventMessage[] = []
  private readonly replies = new Map<number, (r: ResponseMessage) => void>()
  private nextId = 1
  readonly closed: Promise<number>
  constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as ResponseMessage | EventMessage
      if (message.type === 'response') this.replies.get(message.id)?.(message)
      else this.events.push(message)
    })
    this.closed = new Promise((resolve) => socket.on('close', (code) => resolve(code)))
  }
  static open(host: RunningHost): Promise<Client> {
    const socket = new WebSocket(`ws://127.0.0.1:${host.port}/engine?token=${host.token}`, { origin: `http://127.0.0.1:${host.port}` })
    return new Promise((resolve, reject) => {
      socket.once('open', () => resolve(new Client(socket)))
      socket.once('error', reject)
    })
  }
  sendRaw(text: string): Promise<ResponseMessage> {
    // Replies to messages without a usable id come back with id -1.
    const parsed = JSON.parse(text) as unknown
    const id = typeof parsed === 'object' && parsed !== null && typeof (parsed as { id?: unknown }).id === 'number' ? (parsed as { id: number }).id : -1
    return new Promise((resolve) => {
      this.replies.set(id, resolve)
      this.socket.send(text)
    })
  }
  async request<T>(name: string, args: unknown = {}): Promise<T> {
    const id = this.nextId++
    const reply = await new Promise<ResponseMessage>((resolve) => {
      this.replies.set(id, resolve)
      this.socket.send(JSON.stringify({ type: 'request', id, name, args }))
    })
    if (!reply.ok) throw new Error(reply.error)
    return reply.result as T
  }
  async waitForEvent(test: (e: EventMessage) => boolean, timeoutMs = 240_000): Promise<EventMessage> {
    const started = Date.now()
    for (;;) {
      const found = this.events.find(test)
      if (found) return found
      if (Date.now() - started > timeoutMs) throw new Error('timed out waiting for an event')
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  close(): void {
    this.socket.close()
  }
}

describe.skipIf(!existsSync(HOST_JS))('the browser-mode host', () => {
  let host: RunningHost
  beforeAll(async () => {
    host = await startBuiltHost()
  })
  afterAll(async () => host?.close())

  const alive = async () => expect(await getStatus(host.url)).toBe(200)

  it('answers malformed targets without the token with 400 or 403 and stays up', async () => {
    for (const target of ['/%', '//', '//x/y', '/%E0%A4%A', '/..%2f..%2fetc/passwd', '/index.html?token=%']) {
      const status = await rawGet(host.port, target)
      expect([400, 403, 404], target).toContain(status)
    }
    // A page of another origin doing `new Image().src = 'http://127.0.0.1:<port>/%'`.
    expect(await rawGet(host.port, '/%', ['Origin: http://evil.example'])).toBe(400)
    await alive()
  })

  it('refuses WebSocket upgrades to odd targets, without the token or from another origin, and stays up', async () => {
    const upgrade = (target: string, origin: string) =>
      rawGet(host.port, target, [
        'Upgrade: websocket',
        'Connection: Upgrade',
        'Sec-WebSocket-Version: 13',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
        `Origin: ${origin}`
      ])
    const own = `http://127.0.0.1:${host.port}`
    expect(await upgrade('//', own)).toBe(403)
    expect(await upgrade('/%', own)).toBe(403)
    expect(await upgrade('/engine', own)).toBe(403)
    expect(await upgrade(`/engine?token=${host.token}`, 'http://evil.example')).toBe(403)
    await alive()
  })

  it('closes a socket that sends a frame over 1 MiB or text that is not UTF-8, and stays up', async () => {
    const big = await Client.open(host)
    big.socket.send('x'.repeat((1 << 20) + 10))
    expect(await big.closed).toBe(1009)
    const bad = await Client.open(host)
    bad.socket.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false })
    expect(await bad.closed).toBe(1007)
    await alive()
    const client = await Client.open(host)
    expect((await client.request<{ version: string }>('engine.info')).version).toMatch(/^\d+\.\d+\.\d+$/)
    client.close()
  })

  it('answers every malformed message with an error reply that names the problem briefly', async () => {
    const client = await Client.open(host)
    const reply = (text: string) => client.sendRaw(text)
    expect((await reply('null')).ok).toBe(false)
    expect((await reply('null')) as { error: string }).toMatchObject({ error: 'a request must be an object' })
    const deep = `{"type":"request","id":1,"name":${'['.repeat(100_000)}${']'.repeat(100_000)}}`
    const deepReply = (await client.sendRaw(deep)) as { ok: false; error: string }
    expect(deepReply.ok).toBe(false)
    expect(deepReply.error.length).toBeLessThan(200)
    const long = (await reply(JSON.stringify({ type: 'request', id: 2, name: 'n'.repeat(900_000) }))) as { ok: false; error: string }
    expect(long.error.length).toBeLessThan(200)
    // Fuzz: messages that are not requests (any JSON with another type) never reach the engine.
    await fc.assert(
      fc.asyncProperty(fc.jsonValue(), fc.integer({ min: 10, max: 1e6 }), async (value, id) => {
        const response = await reply(JSON.stringify({ type: 'not-a-request', id, payload: value }))
        return response.ok === false && response.id === id && typeof response.error === 'string' && response.error.length < 600
      }),
      { numRuns: 200 }
    )
    client.close()
    await alive()
  })

  it('restarts a killed engine, tells the window, and resumes the interrupted run from its checkpoint', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'cartographer-shapes-'))
    await writeShapesFolder(folder, { countPerClass: 40, size: 16, seed: 5 })
    const client = await Client.open(host)
    await client.request('dataset.open', { path: folder })
    await client.request('train.start', { family: 'vae', epochs: 3, latentDim: 4 })
    await client.waitForEvent((e) => e.name === 'train.epoch')
    // The first epoch's checkpoint follows its epoch event: wait until the run lists it.
    let runs: RunListing[] = []
    for (let i = 0; i < 100 && !runs.some((r) => r.epochsDone >= 1); i++) {
      runs = await client.request<RunListing[]>('runs.list')
      await new Promise((r) => setTimeout(r, 100))
    }
    process.kill(host.enginePid() as number, 'SIGKILL')
    const restarted = await client.waitForEvent((e) => e.name === 'engine.restarted', 30_000)
    expect((restarted.payload as { reason: string }).reason).toMatch(/SIGKILL.*restarted/)
    // The new engine holds nothing; the run is listed as interrupted and resumes.
    const state = await client.request<{ dataset: unknown; model: unknown }>('engine.state')
    expect(state.dataset).toBeNull()
    const listed = (await client.request<RunListing[]>('runs.list'))[0]
    expect(listed.state).toBe('interrupted')
    expect(listed.epochsPlanned).toBe(3)
    expect(listed.epochsDone).toBeGreaterThanOrEqual(1)
    client.events.length = 0
    const model = await client.request<{ family: string }>('run.resume', { path: listed.path })
    expect(model.family).toBe('vae')
    const finished = await client.waitForEvent((e) => e.name === 'train.finished')
    expect((finished.payload as { outcome: string }).outcome).toBe('completed')
    // Only the epochs left were trained.
    const epochs = client.events.filter((e) => e.name === 'train.epoch').map((e) => (e.payload as { epoch: number }).epoch)
    expect(epochs[0]).toBe(listed.epochsDone + 1)
    expect(epochs.at(-1)).toBe(3)
    const after = (await client.request<RunListing[]>('runs.list'))[0]
    expect(after).toMatchObject({ state: 'finished', epochsDone: 3 })
    client.close()
  }, 600_000)
})
