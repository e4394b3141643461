// Id-matched replies: a request gets the next id, its promise settles when the reply with that id
// arrives, and every request still waiting fails at once when the other side goes away. The
// browser-mode host, the Electron main process and the renderer's client all match replies so.
export class PendingReplies<Reply> {
  private nextId = 1
  private readonly waiting = new Map<number, (reply: Reply) => void>()

  /** A fresh id and the promise of its reply. */
  issue(): { id: number; reply: Promise<Reply> } {
    const id = this.nextId++
    return { id, reply: new Promise<Reply>((resolve) => this.waiting.set(id, resolve)) }
  }

  /** Delivers a reply; false when no request waits for that id (a late or a forged reply). */
  settle(id: number, reply: Reply): boolean {
    const resolve = this.waiting.get(id)
    if (!resolve) return false
    this.waiting.delete(id)
    resolve(reply)
    return true
  }

  /** Answers every waiting request with `make(id)` (the other side stopped). */
  failAll(make: (id: number) => Reply): void {
    const ids = [...this.waiting.keys()]
    for (const id of ids) this.settle(id, make(id))
  }

  get size(): number {
    return this.waiting.size
  }
}
