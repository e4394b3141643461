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
