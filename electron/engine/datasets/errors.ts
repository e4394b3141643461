import { constants } from 'node:fs'
import { open } from 'node:fs/promises'

// One error type for every loader failure that the user can fix (wrong folder, broken download,
// unreadable file), so the UI can show `message` as is and point at `path`.

export class DatasetError extends Error {
  /** The file or folder the problem is about, absolute when the caller gave an absolute path. */
  readonly path: string

  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'DatasetError'
    this.path = path
  }
}

/** The errno code of a Node fs error (ENOENT, EACCES...), or undefined for anything else. */
export function errnoCode(error: unknown): string | undefined {
  if (typeof error === 'object' && error !== null && 'code' in error) {
    const code = (error as { code: unknown }).code
    return typeof code === 'string' ? code : undefined
  }
  return undefined
}

/** Plain words for the fs errors a user can meet while we read their files. */
export function describeFsError(error: unknown, what: 'file' | 'folder' = 'file'): string {
  const code = errnoCode(error)
  switch (code) {
    case 'ENOENT':
      return `${what} not found (it may have been moved or deleted)`
    case 'EACCES':
    case 'EPERM':
      return `cannot read ${what}: permission denied`
    case 'EISDIR':
      return 'is a folder, not a file'
    case 'ENOTDIR':
      return 'is a file, not a folder'
    case 'ELOOP':
      return 'too many levels of symbolic links'
    case 'ENOTREG':
      return 'not a regular file (a device, FIFO or socket); not read'
    case 'EFBIG':
      return error instanceof FileTooLargeError
        ? `${what} too large: ${error.size.toLocaleString('en')} bytes, more than the ${error.limit.toLocaleString('en')} it may have`
        : `${what} too large`
    case 'EMFILE':
    case 'ENFILE':
      return 'too many files open at once; close other programs and try again'
    case 'EIO':
      return `input/output error while reading the ${what} (failing disk or disconnected drive?)`
    default: {
      const message = error instanceof Error ? error.message : String(error)
      return `cannot read ${what}: ${message}`
    }
  }
}

/**
 * Reads a whole file the user named, refusing what is not a regular file (a FIFO would hold the
 * read for ever, /dev/zero would fill memory) and anything larger than `maxBytes`. The file is
 * opened non-blocking, so even opening a FIFO returns at once; fstat then tells what it is.
 */
export async function readRegularFile(path: string, maxBytes: number): Promise<Buffer> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK)
  try {
    const info = await handle.stat()
    if (!info.isFile()) throw new NotRegularFileError(path)
    if (info.size > maxBytes) throw new FileTooLargeError(path, info.size, maxBytes)
    const buffer = Buffer.alloc(info.size)
    let read = 0
    while (read < info.size) {
      const { bytesRead } = await handle.read(buffer, read, info.size - read, read)
      if (bytesRead === 0) break
      read += bytesRead
    }
    return read === info.size ? buffer : buffer.subarray(0, read)
  } finally {
    await handle.close()
  }
}

export class NotRegularFileError extends Error {
  readonly code = 'ENOTREG'
  constructor(readonly path: string) {
    super(`${path} is not a regular file (a device, FIFO or socket); not read`)
  }
}

export class FileTooLargeError extends Error {
  readonly code = 'EFBIG'
  constructor(
    readonly path: string,
    readonly size: number,
    readonly limit: number
  ) {
    super(`${path} is ${size.toLocaleString('en')} bytes, more than the ${limit.toLocaleString('en')} this reader takes`)
  }
}
