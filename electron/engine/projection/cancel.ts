// Cancellation for the projection's long work (the neighbour search, the layout), shared by the
// driving thread's modules. No imports: the layout worker's modules may use it too.

/** What a cancelled projection throws when its signal gives no Error of its own. */
export function abortError(): Error {
  const e = new Error('projection cancelled')
  e.name = 'AbortError'
  return e
}

/** The error a cancelled `signal` stands for: its reason when that is an Error, else abortError(). */
export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason
  return reason instanceof Error ? reason : abortError()
}

/** `promise`, or a rejection with abortReason(signal) as soon as `signal` aborts. */
export function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortReason(signal))
    if (signal.aborted) return onAbort()
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort)
        resolve(value)
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(error)
      }
    )
  })
}
