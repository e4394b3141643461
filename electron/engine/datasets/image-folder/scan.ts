// The files under a dataset folder: which are images, which to ignore (what operating systems leave
// behind), a recursive scan that survives loops and vanishing files, and its stable order.
import { elementAt } from '../../../../models/arrays'
import { readdir, realpath, stat } from 'node:fs/promises'
import { extname, sep } from 'node:path'
import { naturalCompare } from '../common'
import { describeFsError, errnoCode } from '../errors'
import type { SkippedFile } from '../types'

export const LABELS_CSV = 'labels.csv'

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.jpe', '.jfif', '.gif', '.webp', '.tif', '.tiff', '.avif', '.heic', '.heif', '.bmp'])

/** Image formats people do keep in datasets but that we cannot decode: say so, not "not an image". */
export const UNSUPPORTED_EXTENSIONS: Record<string, string> = {
  '.svg': 'SVG (vector) images are not supported; export them as PNG',
  '.psd': 'Photoshop files are not supported; export them as PNG',
  '.cr2': 'camera raw files are not supported; export them as JPEG or PNG',
  '.nef': 'camera raw files are not supported; export them as JPEG or PNG',
  '.dng': 'camera raw files are not supported; export them as JPEG or PNG'
}

/** Files and folders that operating systems and tools leave behind; never the user's data. */
const IGNORED_NAMES = new Set(['thumbs.db', 'ehthumbs.db', 'desktop.ini', '__macosx', '$recycle.bin', 'system volume information', 'icon\r'])

/** Deeper than this is almost certainly a mistake (or a loop that realpath cannot see). */
const MAX_DEPTH = 32

export const VANISHED = 'file vanished during load (deleted or moved while the dataset was loading)'

function isIgnoredName(name: string): boolean {
  return name.startsWith('.') || IGNORED_NAMES.has(name.toLowerCase())
}

export function hasImageExtension(name: string): boolean {
  return IMAGE_EXTENSIONS.has(extname(name).toLowerCase())
}

/** Names the image format from its first bytes, or null when they match no format we know. */
export function sniffImageFormat(head: Uint8Array): string | null {
  const startsWith = (bytes: number[], at = 0): boolean => head.length >= at + bytes.length && bytes.every((b, i) => head[at + i] === b)
  const ascii = (at: number, text: string): boolean =>
    startsWith(
      [...text].map((ch) => ch.charCodeAt(0)),
      at
    )
  if (startsWith([0x89, 0x50, 0x4e, 0x47])) return 'PNG'
  if (startsWith([0xff, 0xd8, 0xff])) return 'JPEG'
  if (ascii(0, 'GIF8')) return 'GIF'
  if (ascii(0, 'RIFF') && ascii(8, 'WEBP')) return 'WebP'
  if (startsWith([0x49, 0x49, 0x2a, 0x00]) || startsWith([0x4d, 0x4d, 0x00, 0x2a])) return 'TIFF'
  if (ascii(4, 'ftyp')) return 'AVIF/HEIF'
  if (ascii(0, 'BM')) return 'BMP'
  return null
}

export interface FoundFile {
  absolute: string
  /** Relative to the dataset root, with '/' separators: what the UI shows. */
  relative: string
  /** Path components below the root; 1 = directly in the root. */
  depth: number
}

export interface Scan {
  files: FoundFile[]
  skipped: SkippedFile[]
}

/** Orders paths folder by folder, each level in natural order ("a/2.png" < "a/10.png" < "b/1.png"). */
export function comparePaths(a: string, b: string): number {
  return compareParts(a.split('/'), b.split('/'))
}

function compareParts(partsA: string[], partsB: string[]): number {
  for (let i = 0; i < Math.min(partsA.length, partsB.length); i++) {
    // Equal folder names are the common case (every file of a class); skip the collator for them.
    const a = partsA[i] ?? ''
    const b = partsB[i] ?? ''
    if (a === b) continue
    const order = naturalCompare(a, b)
    if (order !== 0) return order
  }
  return partsA.length - partsB.length
}

/**
 * Lists the files under `root`. Real folders are walked first and symbolic links to folders only
 * afterwards, so a link never claims a folder that is also present for real (a link "cats/more"
 * to "dogs" must not make the dogs count as cats), and a link to an already scanned folder (a
 * loop) is not followed. Nothing outside the folder the user named is read: a link whose target
 * lies outside it is listed as skipped.
 */
export async function scanTree(root: string): Promise<Scan> {
  const scan: Scan = { files: [], skipped: [] }
  const realRoot = await realpath(root)
  const visited = new Set<string>([realRoot])
  const outside = (real: string) => real !== realRoot && !real.startsWith(realRoot.endsWith(sep) ? realRoot : realRoot + sep)
  const linkedFolders: Array<{ absolute: string; relative: string; depth: number }> = []

  // Relative paths are built by appending names: path.relative() resolves both paths on every
  // call, which made it most of the walk's time on a 100k-file folder.
  const enterFolder = async (absolute: string, relativeDir: string, depth: number): Promise<void> => {
    let real: string
    try {
      real = await realpath(absolute)
    } catch (error) {
      scan.skipped.push({ path: absolute, reason: `folder skipped: ${describeFsError(error, 'folder')}` })
      return
    }
    if (visited.has(real)) {
      scan.skipped.push({
        path: absolute,
        reason: `symbolic link to a folder that was already scanned (${real}); not followed, to avoid a loop or counting images twice`
      })
      return
    }
    if (depth > MAX_DEPTH) {
      scan.skipped.push({ path: absolute, reason: `folder nested more than ${MAX_DEPTH} levels deep; not scanned` })
      return
    }
    visited.add(real)
    await walk(absolute, relativeDir, depth)
  }

  const walk = async (dir: string, relativeDir: string, depth: number): Promise<void> => {
    let entries
    try {
      entries = await readdir(dir, { withFileTypes: true })
    } catch (error) {
      scan.skipped.push({ path: dir, reason: `folder skipped: ${describeFsError(error, 'folder')}` })
      return
    }
    // Plain concatenation: path.join() normalizes the whole path on every call, a large share of
    // the walk on big folders (the names come from readdir and contain no separator).
    const prefix = dir.endsWith(sep) ? dir : dir + sep
    for (const entry of entries) {
      if (isIgnoredName(entry.name)) continue
      const absolute = prefix + entry.name
      const relativePath = relativeDir === '' ? entry.name : `${relativeDir}/${entry.name}`
      if (entry.isSymbolicLink()) {
        let target
        try {
          target = await stat(absolute)
        } catch (error) {
          const code = errnoCode(error)
          scan.skipped.push({
            path: absolute,
            reason:
              code === 'ENOENT'
                ? 'broken symbolic link (its target does not exist)'
                : code === 'ELOOP'
                  ? 'symbolic link loop (the link leads back to itself); not followed'
                  : `symbolic link skipped: ${describeFsError(error)}`
          })
          continue
        }
        const real = await realpath(absolute).catch(() => absolute)
        if (outside(real)) {
          scan.skipped.push({ path: absolute, reason: `symbolic link to ${real}, outside the dataset folder; not followed` })
          continue
        }
        if (target.isDirectory()) linkedFolders.push({ absolute, relative: relativePath, depth: depth + 1 })
        else if (target.isFile()) addFile(absolute, relativePath, depth + 1)
        else scan.skipped.push({ path: absolute, reason: 'not a regular file' })
      } else if (entry.isDirectory()) {
        await enterFolder(absolute, relativePath, depth + 1)
      } else if (entry.isFile()) {
        addFile(absolute, relativePath, depth + 1)
      } else {
        // Sockets, FIFOs, devices: opening a FIFO would block the load forever.
        scan.skipped.push({ path: absolute, reason: 'not a regular file' })
      }
    }
  }

  const addFile = (absolute: string, relativePath: string, depth: number): void => {
    scan.files.push({ absolute, relative: relativePath, depth })
  }

  await walk(root, '', 0)
  // Links found inside linked folders join the queue; `visited` makes this terminate.
  for (let i = 0; i < linkedFolders.length; i++) {
    const linked = elementAt(linkedFolders, i)
    await enterFolder(linked.absolute, linked.relative, linked.depth)
  }
  // Unsorted: a cache hit needs only the fingerprint, and the natural-order sort of 100k paths
  // would cost more than reading the cache (see sortScan).
  return scan
}

/** Puts the files in the order the dataset lists them (natural, folder by folder). The skipped
 *  entries are sorted once, with the decoder's own, in decodeFolder. */
export function sortScan(scan: Scan): void {
  // Split each path once instead of once per comparison.
  const files = scan.files.map((file, index) => ({ index, parts: file.relative.split('/') }))
  files.sort((a, b) => compareParts(a.parts, b.parts))
  scan.files = files.map((entry) => elementAt(scan.files, entry.index))
}

/** A file chosen for decoding, with its class (when labelled) and a name for the UI. */
