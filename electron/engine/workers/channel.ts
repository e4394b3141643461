// Requests to a worker thread and its replies, matched by id (PendingReplies, as the transports
// match theirs), for every worker the engine starts: the training replicas and the layout threads.
// A worker that reports an error, throws or exits is finished: every request still waiting fails at
// once with that reason, and so does every later one.
import type { MessagePort, Transferable, Worker } from 'node:worker_threads'
import { PendingReplies } from '../../common/replies'

/** A request as it travels: id 0 asks for no reply. */
export interface RequestEnvelope<Request> {
  id: number
  body: Request
}

/** A reply as it travels: id 0 is a notice the worker sends of its own accord (say, "loaded"). */
export type ReplyEnvelope<Reply> = { id: number; ok: true; body: Reply } | { id: number; ok: false; error: string }

type Settled<Reply> = { ok: true; body: Reply } | { ok: false; error: Error }

export class WorkerChannel<Request, Reply> {
  private readonly replies = new PendingReplies<Settled<Reply>>()
  private failure: Error | null = null
  private exited = false
  readonly whenExited: Promise<void>

  /**
   * `name` goes into error messages ("training worker: ..."); `onNotice` gets the worker's notices;
   * `onFailure` runs once, when the worker fails or exits.
   */
  constructor(
    readonly worker: Worker,
    name: string,
    private readonly handlers: { onNotice?(notice: Reply): void; onFailure?(error: Error): void } = {}
  ) {
    worker.on('message', (message: ReplyEnvelope<Reply>) => {
      if (!message.ok) return this.fail(new Error(`${name}: ${message.error}`))
      if (message.id === 0) handlers.onNotice?.(message.body)
      else this.replies.settle(message.id, { ok: true, body: message.body })
    })
    worker.on('error', (error) => this.fail(error))
    this.whenExited = new Promise((resolve) =>
      worker.once('exit', (code) => {
        this.exited = true
        this.fail(new Error(`the ${name} stopped (exit code ${code})`))
        resolve()
      })
    )
  }

  /** Sends `body` and waits for its reply (rejected if the worker fails first). */
  async request(body: Request, transfer: readonly Transferable[] = []): Promise<Reply> {
    if (this.failure) throw this.failure
    const { id, reply } = this.replies.issue()
    this.worker.postMessage({ id, body } satisfies RequestEnvelope<Request>, transfer)
    const settled = await reply
    if (!settled.ok) throw settled.error
    return settled.body
  }

  /** Sends `body` without waiting for anything (nothing, once the worker has failed). */
  post(body: Request, transfer: readonly Transferable[] = []): void {
    if (!this.failure) this.worker.postMessage({ id: 0, body } satisfies RequestEnvelope<Request>, transfer)
  }

  get alive(): boolean {
    return this.failure === null
  }

  /** Fails every waiting and later request with `error` (the first reason given is kept). */
  fail(error: Error): void {
    const first = this.failure === null
    this.failure ??= error
    this.replies.failAll(() => ({ ok: false, error: this.failure as Error }))
    if (first) this.handlers.onFailure?.(this.failure)
  }

  /** Stops the worker; resolves once it has exited. */
  async terminate(): Promise<void> {
    if (!this.exited) await this.worker.terminate()
    await this.whenExited
  }
}

/**
 * The worker's side: `handle` answers each request in arrival order, one at a time; what it
 * returns (with the buffers to transfer) goes back under the request's id, nothing for a request
 * that asked for no reply. A throw goes back as the worker's error, which finishes the channel.
 */
export function serveRequests<Request, Reply>(
  port: MessagePort,
  handle: (request: Request) => Promise<{ reply: Reply; transfer?: Transferable[] } | void> | { reply: Reply; transfer?: Transferable[] } | void
): void {
  let queue: Promise<void> = Promise.resolve()
  port.on('message', ({ id, body }: RequestEnvelope<Request>) => {
    queue = queue.then(async () => {
      try {
        const answer = await handle(body)
        if (answer && id !== 0) port.postMessage({ id, ok: true, body: answer.reply } satisfies ReplyEnvelope<Reply>, answer.transfer ?? [])
      } catch (error) {
        port.postMessage({ id, ok: false, error: error instanceof Error ? error.message : String(error) } satisfies ReplyEnvelope<Reply>)
      }
    })
  })
}

/** A notice from the worker of its own accord (id 0). */
export function notify<Reply>(port: MessagePort, body: Reply): void {
  port.postMessage({ id: 0, ok: true, body } satisfies ReplyEnvelope<Reply>)
}
