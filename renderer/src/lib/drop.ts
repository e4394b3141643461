// A dataset folder dropped onto the window: where it is on disk. The desktop app learns a dropped
// folder's path from Electron (webUtils.getPathForFile, through the preload); a web page is never
// told it, but a path dragged as text or as a file:// link (from a file manager's location bar, a
// terminal) works in both modes.

/** What a drop offers, as the window's drop handler needs it. */
export type DropResult = { path: string } | { error: string } | null

/**
 * The absolute path a drop names, an error to show when it holds files whose location is hidden
 * from the page, or null when it holds nothing usable. `pathForFile` is Electron's (null in a browser).
 */
export function droppedPath(data: DataTransfer, pathForFile: ((file: File) => string) | null): DropResult {
  const file = data.files.length > 0 ? data.files[0] : undefined
  if (file && pathForFile) {
    const path = pathForFile(file)
    if (path) return { path }
  }
  for (const line of data.getData('text/uri-list').split(/\r?\n/)) {
    const uri = line.trim()
    // RFC 2483: lines starting with # are comments.
    if (uri.startsWith('file://')) {
      try {
        const url = new URL(uri)
        if (url.host === '' || url.host === 'localhost') return { path: decodeURIComponent(url.pathname) }
      } catch {
        // Not a URI after all: try the plain text below.
      }
    }
  }
  const text = data.getData('text/plain').trim()
  if (text.startsWith('/') && !text.includes('\n')) return { path: text }
  if (file) {
    return {
      error: `"${file.name}" was dropped, but a browser does not tell the page where a dropped folder is: type or paste its path (the desktop app accepts dropped folders)`
    }
  }
  return null
}
