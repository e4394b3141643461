import type { ProgressCallback } from './types'

const MIN_INTERVAL_MS = 100
const MIN_STEP_FRACTION = 0.01

/**
 * Turns many small `advance()` calls into callbacks every ~1% of the work or every 100 ms,
 * whichever comes first, so a UI gets smooth progress without being flooded.
 */
export class ProgressReporter {
  private done = 0
  private lastReportedDone = -1
  private lastReportedAt = 0
  private readonly startedAt = performance.now()

  constructor(
    readonly total: number,
    private readonly onProgress?: ProgressCallback
  ) {}

  /** Reports {done: 0} so the UI learns the total before the first item finishes. */
  start(): void {
    this.report()
  }

  advance(count = 1): void {
    this.done = Math.min(this.total, this.done + count)
    if (!this.onProgress) return
    const now = performance.now()
    const step = this.done - this.lastReportedDone
    if (this.done === this.total || step >= this.total * MIN_STEP_FRACTION || now - this.lastReportedAt >= MIN_INTERVAL_MS) {
      this.report(now)
    }
  }

  /** Reports completion even when some work units were skipped (e.g. files that failed early). */
  finish(): void {
    if (this.done < this.total) this.done = this.total
    if (this.lastReportedDone !== this.done) this.report()
  }

  private report(now = performance.now()): void {
    if (!this.onProgress) return
    this.lastReportedDone = this.done
    this.lastReportedAt = now
    const elapsed = (now - this.startedAt) / 1000
    // Too early estimates swing wildly; wait for a little work and a little time.
    const etaSeconds = this.done > 0 && elapsed > 0.05 ? (elapsed / this.done) * (this.total - this.done) : null
    this.onProgress({ done: this.done, total: this.total, etaSeconds })
  }
}
