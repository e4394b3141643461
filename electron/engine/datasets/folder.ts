// Loader for folders of image files (PNG, JPEG, WebP, GIF, TIFF, AVIF...), decoded with sharp.
//
// Layouts:
//   class folders   root/<class>/**/<image>   (folder name = class; deeper folders count for it)
//   flat            root/<image>              (unlabelled)
//   flat + CSV      root/labels.csv with "file,label" lines, paths relative to root
//
// Two passes over the files: headers first (cheap: sharp reads only the header), to choose one
// size and channel count for the whole set, then a full decode + resize of each file straight to
// that format. Decoding everything at source size first would hold whole photos in memory.
//
// With options.cacheDir, a folder is fingerprinted (path, size and mtime of every file: stat only)
// and, when nothing changed since its last load with the same options, read back from the load
// cache (cache.ts) instead: a 60k-image folder reopens in well under a second.

import { open, readdir, realpath, stat } from 'node:fs/promises'
import { basename, extname, join, relative, resolve, sep } from 'node:path'
import sharp from 'sharp'
import {
  assignHeldOutSplit,
  classBalanceNotes,
  countClasses,
  DEFAULT_HELD_OUT_FRACTION,
  DEFAULT_SEED,
  defaultConcurrency,
  type FitPolicy,
  type LoadOptions,
  mapPool,
  naturalCompare,
  splitNote
} from './common'
import { cacheKey, fingerprintFiles, pruneCache, readCache, touchCacheEntry, writeCache } from './cache'
import { DatasetError, describeFsError, errnoCode, readRegularFile } from './errors'
import { ProgressReporter } from './progress'
import type { ImageDataset, LoadReport, ProgressCallback, SkippedFile } from './types'

export const LABELS_CSV = 'labels.csv'

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg', '.jpe', '.jfif', '.gif', '.webp', '.tif', '.tiff', '.avif', '.heic', '.heif', '.bmp'])

/** Image formats people do keep in datasets but that we cannot decode: say so, not "not an image". */
const UNSUPPORTED_EXTENSIONS: Record<string, string> = {
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
/** Largest image file decoded (a 16k x 16k PNG is well below it) and largest labels.csv read. */
const IMAGE_MAX_BYTES = 256 * 2 ** 20
const LABELS_CSV_MAX_BYTES = 64 * 2 ** 20
/** Longest class name labels.csv may give; longer ones (or ones with control characters) are refused. */
const MAX_LABEL_LENGTH = 100

/** Sources whose typical shorter side is below this get 32x32 by default, others 64x64. */
const SMALL_SOURCE_SIDE = 64
/** Same-size sources up to this side are kept at their own size by default. */
const KEEP_SOURCE_MAX_SIDE = 32

const WHITE = { r: 255, g: 255, b: 255 }

const VANISHED = 'file vanished during load (deleted or moved while the dataset was loading)'

export function isIgnoredName(name: string): boolean {
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

interface FoundFile {
  absolute: string
  /** Relative to the dataset root, with '/' separators: what the UI shows. */
  relative: string
  /** Path components below the root; 1 = directly in the root. */
  depth: number
}

interface Scan {
  files: FoundFile[]
  skipped: SkippedFile[]
}

/** Orders paths folder by folder, each level in natural order ("a/2.png" < "a/10.png" < "b/1.png"). */
function comparePaths(a: string, b: string): number {
  return compareParts(a.split('/'), b.split('/'))
}

function compareParts(partsA: string[], partsB: string[]): number {
  for (let i = 0; i < Math.min(partsA.length, partsB.length); i++) {
    // Equal folder names are the common case (every file of a class); skip the collator for them.
    if (partsA[i] === partsB[i]) continue
    const order = naturalCompare(partsA[i], partsB[i])
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
async function scanTree(root: string): Promise<Scan> {
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
    await enterFolder(linkedFolders[i].absolute, linkedFolders[i].relative, linkedFolders[i].depth)
  }
  // Unsorted: a cache hit needs only the fingerprint, and the natural-order sort of 100k paths
  // would cost more than reading the cache (see sortScan).
  return scan
}

/** Puts the files in the order the dataset lists them (natural, folder by folder). The skipped
 *  entries are sorted once, with the decoder's own, in decodeFolder. */
function sortScan(scan: Scan): void {
  // Split each path once instead of once per comparison.
  const files = scan.files.map((file, index) => ({ index, parts: file.relative.split('/') }))
  files.sort((a, b) => compareParts(a.parts, b.parts))
  scan.files = files.map((entry) => scan.files[entry.index])
}

/** A file chosen for decoding, with its class (when labelled) and a name for the UI. */
interface Candidate {
  file: FoundFile
  label: number
}

interface LayoutPlan {
  layout: LoadReport['layout']
  candidates: Candidate[]
  classNames: string[]
  skipped: SkippedFile[]
  notes: string[]
}

function firstExamples(paths: string[], count = 3): string {
  const shown = paths
    .slice(0, count)
    .map((p) => `"${p}"`)
    .join(', ')
  return paths.length > count ? `${shown}, ...` : shown
}

function planClassFolders(files: FoundFile[]): LayoutPlan {
  const plan: LayoutPlan = { layout: 'class-folders', candidates: [], classNames: [], skipped: [], notes: [] }
  const byClass = new Map<string, FoundFile[]>()
  for (const file of files) {
    if (file.depth === 1) {
      if (file.relative === LABELS_CSV) continue
      plan.skipped.push({
        path: file.absolute,
        reason: hasImageExtension(file.relative)
          ? 'image at the top level of a folder of class folders: it belongs to no class (move it into one)'
          : 'not an image file, and not inside a class folder'
      })
      continue
    }
    const className = file.relative.slice(0, file.relative.indexOf('/'))
    let members = byClass.get(className)
    if (!members) byClass.set(className, (members = []))
    members.push(file)
  }
  plan.classNames = [...byClass.keys()].sort(naturalCompare)
  const nested: string[] = []
  plan.classNames.forEach((className, label) => {
    for (const file of byClass.get(className)!) {
      plan.candidates.push({ file, label })
      if (file.depth > 2 && hasImageExtension(file.relative)) nested.push(file.relative)
    }
  })
  if (nested.length > 0) {
    plan.notes.push(
      `${nested.length} image${nested.length === 1 ? '' : 's'} in folders nested inside class folders ` +
        `were counted for their top-level class folder (e.g. ${firstExamples(nested)}).`
    )
  }
  return plan
}

function planFlat(files: FoundFile[]): LayoutPlan {
  const plan: LayoutPlan = { layout: 'flat-folder', candidates: [], classNames: [], skipped: [], notes: [] }
  const ignored: string[] = []
  for (const file of files) {
    if (file.depth === 1) plan.candidates.push({ file, label: -1 })
    else if (hasImageExtension(file.relative)) ignored.push(file.relative)
  }
  if (ignored.length > 0) {
    plan.notes.push(
      `${ignored.length} image${ignored.length === 1 ? ' in a subfolder was' : 's in subfolders were'} ignored ` +
        `because the top level holds more images, so it was read as one flat, unlabelled folder ` +
        `(e.g. ${firstExamples(ignored)}). To use subfolders as classes, move the top-level images into them.`
    )
  }
  plan.notes.push('Flat folder without labels.csv: the dataset is unlabelled.')
  return plan
}

/** Splits one CSV line, honouring double quotes (file names may contain commas). */
export function splitCsvLine(line: string, delimiter = ','): string[] {
  const fields: string[] = []
  let field = ''
  let quoted = false
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        field += '"'
        i++
      } else if (ch === '"') quoted = false
      else field += ch
    } else if (ch === '"' && field.trim() === '') {
      quoted = true
      field = ''
    } else if (ch === delimiter) {
      fields.push(field.trim())
      field = ''
    } else field += ch
  }
  fields.push(field.trim())
  return fields
}

const HEADER_FILE_WORDS = new Set(['file', 'filename', 'file_name', 'path', 'filepath', 'image', 'img', 'name'])
const HEADER_LABEL_WORDS = new Set(['label', 'class', 'category', 'target', 'y'])

async function planLabelsCsv(root: string, files: FoundFile[]): Promise<LayoutPlan> {
  const csvPath = join(root, LABELS_CSV)
  const plan: LayoutPlan = { layout: 'flat-folder', candidates: [], classNames: [], skipped: [], notes: [] }
  let text: string
  try {
    text = (await readRegularFile(csvPath, LABELS_CSV_MAX_BYTES)).toString('utf8')
  } catch (error) {
    throw new DatasetError(csvPath, `${csvPath}: ${describeFsError(error)}.`, { cause: error })
  }
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/)
  const byRelative = new Map(files.map((file) => [file.relative, file]))
  // Tab- or semicolon-separated files are common exports from spreadsheets.
  const firstDataLine = lines.find((line) => line.trim() !== '') ?? ''
  const delimiter = firstDataLine.includes(',') ? ',' : firstDataLine.includes('\t') ? '\t' : firstDataLine.includes(';') ? ';' : ','
  const entries: Array<{ file: FoundFile; label: string }> = []
  const firstLineOf = new Map<string, number>()
  let sawContent = false
  lines.forEach((line, index) => {
    const lineNumber = index + 1
    if (line.trim() === '' || line.trimStart().startsWith('#')) return
    const fields = splitCsvLine(line, delimiter)
    if (!sawContent) {
      sawContent = true
      const [first, second] = fields.map((f) => f.toLowerCase())
      if (HEADER_FILE_WORDS.has(first) || HEADER_LABEL_WORDS.has(second ?? '')) return
    }
    const [fileField, labelField] = fields
    if (fields.length < 2 || !fileField || !labelField) {
      plan.skipped.push({
        path: csvPath,
        reason: `${LABELS_CSV} line ${lineNumber} is malformed: expected "file,label" but found "${line.trim().slice(0, 80)}"`
      })
      return
    }
    const normalized = fileField.replace(/\\/g, '/').replace(/^\.\//, '')
    const file = byRelative.get(normalized)
    if (!file) {
      plan.skipped.push({
        path: join(root, normalized),
        reason: `${LABELS_CSV} line ${lineNumber} names "${fileField}", which is not in the folder`
      })
      return
    }
    const earlier = firstLineOf.get(normalized)
    if (earlier !== undefined) {
      plan.skipped.push({
        path: file.absolute,
        reason: `${LABELS_CSV} line ${lineNumber} lists "${fileField}" again (first on line ${earlier}); the later line was ignored`
      })
      return
    }
    firstLineOf.set(normalized, lineNumber)
    // A class name is shown everywhere (legend, grids, exports): no control characters, no essays.
    // eslint-disable-next-line no-control-regex
    if (/[\u0000-\u001f\u007f]/.test(labelField) || labelField.length > MAX_LABEL_LENGTH) {
      plan.skipped.push({
        path: file.absolute,
        reason: `${LABELS_CSV} line ${lineNumber}: the label ${labelField.length > MAX_LABEL_LENGTH ? `is ${labelField.length} characters long (at most ${MAX_LABEL_LENGTH})` : 'contains control characters'}; the file was left out`
      })
      return
    }
    entries.push({ file, label: labelField })
  })
  if (entries.length === 0) {
    throw new DatasetError(
      csvPath,
      `${csvPath} names no image of the folder: each line should read "file,label" with the file ` +
        `name relative to ${root}` +
        (plan.skipped.length > 0 ? ` (first problem: ${plan.skipped[0].reason}).` : '.')
    )
  }
  plan.classNames = [...new Set(entries.map((entry) => entry.label))].sort(naturalCompare)
  const labelIndex = new Map(plan.classNames.map((name, index) => [name, index]))
  for (const entry of entries) plan.candidates.push({ file: entry.file, label: labelIndex.get(entry.label)! })
  for (const file of files) {
    if (file.relative === LABELS_CSV || firstLineOf.has(file.relative)) continue
    if (file.depth === 1 || hasImageExtension(file.relative)) {
      plan.skipped.push({ path: file.absolute, reason: `not listed in ${LABELS_CSV}, so it has no label` })
    }
  }
  plan.notes.push(`Labels read from ${LABELS_CSV} (${entries.length} files, ${plan.classNames.length} classes).`)
  return plan
}

async function planLayout(root: string, files: FoundFile[]): Promise<LayoutPlan> {
  if (files.some((file) => file.relative === LABELS_CSV)) return planLabelsCsv(root, files)
  let topImages = 0
  let nestedImages = 0
  for (const file of files) {
    if (!hasImageExtension(file.relative)) continue
    if (file.depth === 1) topImages++
    else nestedImages++
  }
  // Mixed folders are ambiguous; the side with more images is most likely the dataset.
  if (nestedImages > 0 && nestedImages >= topImages) return planClassFolders(files)
  return planFlat(files)
}

interface HeaderInfo {
  width: number
  height: number
  colour: boolean
  hasAlpha: boolean
  highBitDepth: boolean
}

type Outcome<T> = { ok: true; value: T } | { ok: false; reason: string }
const OK: Outcome<null> = { ok: true, value: null }

async function readHead(path: string, length = 16): Promise<Uint8Array> {
  const handle = await open(path, 'r')
  try {
    const head = new Uint8Array(length)
    const { bytesRead } = await handle.read(head, 0, length, 0)
    return head.subarray(0, bytesRead)
  } finally {
    await handle.close()
  }
}

function decoderMessage(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error)
  return message.split('\n')[0].trim().replace(/:$/, '') || 'unknown decoder error'
}

/**
 * Works out, after sharp failed on a file, what is wrong in words a user can act on: sharp's own
 * messages ("Input file is missing") do not separate a deleted file from a permission problem.
 */
async function diagnose(path: string, error: unknown): Promise<string> {
  let size: number
  try {
    size = (await stat(path)).size
  } catch (statError) {
    // The scan saw this file, so a missing file now means it went away while we were loading.
    return errnoCode(statError) === 'ENOENT' ? VANISHED : describeFsError(statError)
  }
  if (size === 0) return 'empty file (zero bytes)'
  let head: Uint8Array
  try {
    head = await readHead(path)
  } catch (readError) {
    return describeFsError(readError)
  }
  const format = sniffImageFormat(head)
  const extension = extname(path).toLowerCase()
  if (format === null) {
    if (UNSUPPORTED_EXTENSIONS[extension]) return UNSUPPORTED_EXTENSIONS[extension]
    return hasImageExtension(path)
      ? `corrupt image: the contents are not ${extension.slice(1).toUpperCase()} data (no known image signature)`
      : `not an image file${extension ? ` (${extension})` : ''}`
  }
  if (format === 'BMP') return 'BMP images are not supported; convert it to PNG'
  const message = decoderMessage(error)
  if (/pixel limit/i.test(message)) return `image too large to decode (over 268 megapixels): ${message}`
  if (/unsupported/i.test(message)) return `this kind of ${format} image is not supported by the decoder (${message}); convert it to PNG`
  return `corrupt or truncated ${format} image (decoder: ${message})`
}

async function readHeader(file: FoundFile): Promise<Outcome<HeaderInfo>> {
  if (!hasImageExtension(file.relative)) {
    // Only files that look like images by their bytes are worth a decoder call.
    try {
      const head = await readHead(file.absolute)
      if (head.length === 0) return { ok: false, reason: 'empty file (zero bytes)' }
      if (sniffImageFormat(head) === null) {
        const extension = extname(file.relative).toLowerCase()
        const reason = UNSUPPORTED_EXTENSIONS[extension] ?? `not an image file${extension ? ` (${extension})` : ''}`
        return { ok: false, reason }
      }
    } catch (error) {
      return {
        ok: false,
        reason: errnoCode(error) === 'ENOENT' ? VANISHED : describeFsError(error)
      }
    }
  }
  try {
    const metadata = await sharp(file.absolute, { failOn: 'error' }).metadata()
    const colourChannels = metadata.channels - (metadata.hasAlpha ? 1 : 0)
    const grey = colourChannels === 1 || metadata.space === 'b-w' || metadata.space === 'grey16'
    return {
      ok: true,
      value: {
        // Decoding applies the EXIF orientation, so sizes must be the oriented ones.
        width: metadata.autoOrient?.width ?? metadata.width,
        height: metadata.autoOrient?.height ?? metadata.height,
        colour: !grey,
        hasAlpha: metadata.hasAlpha,
        highBitDepth: metadata.depth !== 'uchar' && metadata.depth !== 'char'
      }
    }
  } catch (error) {
    return { ok: false, reason: await diagnose(file.absolute, error) }
  }
}

interface Target {
  width: number
  height: number
  channels: 1 | 3
  fit: FitPolicy
  /** False when every source already has the target size, so no resampling happens. */
  resizes: boolean
}

/**
 * Default size: same-size sources up to 32 px keep their size (MNIST-like data loses nothing);
 * otherwise 32x32 when the typical shorter side is under 64 px, else 64x64, which is what the
 * models train on at interactive speed.
 */
export function chooseTargetSize(sizes: Array<{ width: number; height: number }>, requested?: number): { width: number; height: number } {
  if (requested !== undefined) return { width: requested, height: requested }
  const first = sizes[0]
  const allSame = sizes.every((s) => s.width === first.width && s.height === first.height)
  if (allSame && Math.max(first.width, first.height) <= KEEP_SOURCE_MAX_SIDE) {
    return { width: first.width, height: first.height }
  }
  const shorterSides = sizes.map((s) => Math.min(s.width, s.height)).sort((a, b) => a - b)
  const median = shorterSides[Math.floor(shorterSides.length / 2)]
  const side = median < SMALL_SOURCE_SIDE ? 32 : 64
  return { width: side, height: side }
}

function describeSourceSizes(sizes: HeaderInfo[]): string {
  let smallest = sizes[0]
  let largest = sizes[0]
  let mixed = false
  for (const s of sizes) {
    if (s.width !== sizes[0].width || s.height !== sizes[0].height) mixed = true
    if (s.width * s.height < smallest.width * smallest.height) smallest = s
    if (s.width * s.height > largest.width * largest.height) largest = s
  }
  if (!mixed) return `${smallest.width}x${smallest.height}`
  return `mixed: ${smallest.width}x${smallest.height} .. ${largest.width}x${largest.height}`
}

async function decodeImage(file: FoundFile, header: HeaderInfo, target: Target): Promise<Outcome<Uint8Array>> {
  let bytes: Buffer
  try {
    bytes = await readRegularFile(file.absolute, IMAGE_MAX_BYTES)
  } catch (error) {
    return {
      ok: false,
      reason: errnoCode(error) === 'ENOENT' ? VANISHED : describeFsError(error)
    }
  }
  if (bytes.length === 0) return { ok: false, reason: 'empty file (zero bytes; it was emptied during load)' }
  try {
    let pipeline = sharp(bytes, { failOn: 'error' }).autoOrient()
    if (header.hasAlpha) pipeline = pipeline.flatten({ background: WHITE })
    pipeline = pipeline
      .resize(target.width, target.height, { fit: target.fit, position: 'centre', background: WHITE })
      .toColourspace(target.channels === 1 ? 'b-w' : 'srgb')
      .removeAlpha()
    const { data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true })
    if (info.width !== target.width || info.height !== target.height || info.channels !== target.channels) {
      return {
        ok: false,
        reason: `decoded to ${info.width}x${info.height}x${info.channels} instead of ${target.width}x${target.height}x${target.channels}`
      }
    }
    return { ok: true, value: data }
  } catch (error) {
    return { ok: false, reason: await diagnose(file.absolute, error) }
  }
}

export async function loadImageFolder(dir: string, options: LoadOptions = {}, onProgress?: ProgressCallback): Promise<ImageDataset> {
  const started = performance.now()
  const root = resolve(dir)

  const scan = await scanTree(root)
  if (scan.files.length === 0) {
    // The scan is unsorted: name the first skipped entry in the dataset's order.
    const first = scan.skipped.reduce<Scan['skipped'][number] | null>((a, b) => (a && comparePaths(a.path, b.path) <= 0 ? a : b), null)
    const why = first ? ` (skipped: ${first.path}: ${first.reason})` : ''
    throw new DatasetError(root, `The folder ${root} holds no image files${why}.`)
  }
  if (!options.cacheDir) {
    sortScan(scan)
    return decodeFolder(root, scan, options, started, onProgress)
  }

  const { cacheDir } = options
  const key = cacheKey(root, options)
  const fingerprint = await fingerprintFiles(scan.files, scan.skipped, options.signal)
  const lookup = await readCache(cacheDir, key, fingerprint)
  options.signal?.throwIfAborted()
  if (lookup.status === 'hit') {
    const { dataset } = lookup
    const progress = new ProgressReporter(dataset.split.length, onProgress)
    progress.start()
    progress.finish()
    await touchCacheEntry(lookup.file)
    dataset.report.notes.unshift(
      `No file was added, removed or changed since ${lookup.writtenAt}, so the images were loaded from cache ` +
        `(${lookup.file}) instead of being decoded again.`
    )
    dataset.report.seconds = (performance.now() - started) / 1000
    return dataset
  }

  sortScan(scan)
  const dataset = await decodeFolder(root, scan, options, started, onProgress)
  // The cached report must not carry notes about this particular load's cache: they would be
  // wrong when the entry is read back. They are added to the returned copy only.
  const cacheNotes: string[] = []
  if (lookup.status === 'stale') {
    cacheNotes.push('Files were added, removed or changed since the last load, so every image was decoded again and the load cache was updated.')
  } else if (lookup.status === 'unreadable') {
    cacheNotes.push(`The load cache could not be used (${lookup.reason}), so every image was decoded again and the cache was rewritten.`)
  }
  try {
    const written = await writeCache(cacheDir, key, fingerprint, dataset)
    await pruneCache(cacheDir, written)
  } catch (error) {
    cacheNotes.push(
      `Could not write the load cache in ${cacheDir} (${error instanceof Error ? error.message : String(error)}); ` +
        'the next open will decode every image again.'
    )
  }
  dataset.report = { ...dataset.report, notes: [...dataset.report.notes, ...cacheNotes], seconds: (performance.now() - started) / 1000 }
  return dataset
}

/** The full load: headers, then a decode of every candidate, from a sorted scan. */
async function decodeFolder(root: string, scan: Scan, options: LoadOptions, started: number, onProgress?: ProgressCallback): Promise<ImageDataset> {
  const concurrency = options.concurrency ?? defaultConcurrency()
  const fit = options.fit ?? 'cover'
  const plan = await planLayout(root, scan.files)
  const skipped: SkippedFile[] = [...scan.skipped, ...plan.skipped]
  const notes: string[] = [...plan.notes]

  const progress = new ProgressReporter(plan.candidates.length, onProgress)
  progress.start()

  const headers = await mapPool(plan.candidates, concurrency, (c) => readHeader(c.file), options.signal)
  const readable: Array<{ candidate: Candidate; header: HeaderInfo }> = []
  headers.forEach((outcome, i) => {
    if (outcome.ok) readable.push({ candidate: plan.candidates[i], header: outcome.value })
    else {
      skipped.push({ path: plan.candidates[i].file.absolute, reason: outcome.reason })
      progress.advance()
    }
  })
  if (readable.length === 0) throw noImagesError(root, skipped)

  const infos = readable.map((r) => r.header)
  const size = chooseTargetSize(infos, options.size)
  const colourCount = infos.filter((info) => info.colour).length
  const target: Target = {
    ...size,
    channels: colourCount > 0 ? 3 : 1,
    fit,
    resizes: infos.some((info) => info.width !== size.width || info.height !== size.height)
  }

  const itemBytes = target.width * target.height * target.channels
  const pixels = new Uint8Array(readable.length * itemBytes)
  const decoded = await mapPool(
    readable,
    concurrency,
    async ({ candidate, header }, index): Promise<Outcome<null>> => {
      const outcome = await decodeImage(candidate.file, header, target)
      progress.advance()
      if (!outcome.ok) return outcome
      pixels.set(outcome.value, index * itemBytes)
      // Return no reference to sharp's buffer: the results array lives until every file is
      // decoded, and keeping each item's buffer there held the whole set a second time, as
      // thousands of small Buffers (20k 64x64 RGB PNGs: peak +518 MB for 234 MB of pixels
      // with them, +276 MB without).
      return OK
    },
    options.signal
  )

  // Compact in place: items that failed to decode leave gaps in input order.
  const labelled = plan.classNames.length > 0
  const keptLabels: number[] = []
  const itemNames: string[] = []
  let kept = 0
  decoded.forEach((outcome, index) => {
    const { candidate } = readable[index]
    if (!outcome.ok) {
      skipped.push({ path: candidate.file.absolute, reason: outcome.reason })
      return
    }
    if (kept !== index) pixels.copyWithin(kept * itemBytes, index * itemBytes, (index + 1) * itemBytes)
    keptLabels.push(candidate.label)
    itemNames.push(candidate.file.relative)
    kept++
  })
  if (kept === 0) throw noImagesError(root, skipped)
  progress.finish()

  let classNames = plan.classNames
  let labels: Int32Array | null = null
  let classCounts: number[] = []
  if (labelled) {
    labels = Int32Array.from(keptLabels)
    classCounts = countClasses(labels, classNames.length)
    // A class whose every file failed would be an empty class the models cannot learn.
    const emptyClasses = classNames.filter((_, c) => classCounts[c] === 0)
    if (emptyClasses.length > 0) {
      const remap = new Int32Array(classNames.length).fill(-1)
      const keptNames: string[] = []
      classNames.forEach((name, c) => {
        if (classCounts[c] > 0) remap[c] = keptNames.push(name) - 1
      })
      for (let i = 0; i < labels.length; i++) labels[i] = remap[labels[i]]
      classNames = keptNames
      classCounts = countClasses(labels, classNames.length)
      notes.push(`Class${emptyClasses.length === 1 ? '' : 'es'} with no loadable image left out: ${emptyClasses.map((n) => `"${n}"`).join(', ')}.`)
    }
    notes.push(...classBalanceNotes(classNames, classCounts))
  }

  notes.push(...imageFormatNotes(infos, target, colourCount))
  const heldOutFraction = options.heldOutFraction ?? DEFAULT_HELD_OUT_FRACTION
  const seed = options.seed ?? DEFAULT_SEED
  const split = assignHeldOutSplit(kept, labels, heldOutFraction, seed)
  notes.push(splitNote(split, heldOutFraction, seed, labels !== null))
  skipped.sort((a, b) => comparePaths(a.path, b.path))
  if (skipped.length > 0) {
    notes.push(`${skipped.length} file${skipped.length === 1 ? ' was' : 's were'} skipped; see the list of skipped files.`)
  }

  return {
    name: basename(root),
    width: target.width,
    height: target.height,
    channels: target.channels,
    pixels: kept === readable.length ? pixels : pixels.slice(0, kept * itemBytes),
    labels,
    classNames,
    split,
    itemNames,
    report: {
      layout: plan.layout,
      source: root,
      itemCount: kept,
      classCounts,
      sourceSizes: describeSourceSizes(infos),
      width: target.width,
      height: target.height,
      channels: target.channels,
      skipped,
      notes,
      seconds: (performance.now() - started) / 1000
    }
  }
}

function imageFormatNotes(infos: HeaderInfo[], target: Target, colourCount: number): string[] {
  const notes: string[] = []
  if (!target.resizes) {
    notes.push(`Images kept at their source size, ${target.width}x${target.height}.`)
  } else if (target.fit === 'cover') {
    notes.push(
      `Images resized to ${target.width}x${target.height} with fit "cover": scaled to fill the square, ` +
        'then centre-cropped, so edges of non-square images are cut off (fit "contain" pads instead).'
    )
  } else {
    notes.push(
      `Images resized to ${target.width}x${target.height} with fit "contain": scaled to fit inside, ` +
        'and non-square images padded with white (fit "cover" crops instead).'
    )
  }
  if (target.channels === 1) notes.push('All images are grayscale: 1 channel.')
  else if (colourCount < infos.length) {
    notes.push(`${colourCount} of ${infos.length} images are in colour, so all load as RGB (3 channels); grayscale images are repeated across the channels.`)
  } else notes.push('Colour images: RGB, 3 channels.')
  const alphaCount = infos.filter((info) => info.hasAlpha).length
  if (alphaCount > 0) {
    notes.push(`${alphaCount} image${alphaCount === 1 ? ' has' : 's have'} transparency; it was flattened onto a white background.`)
  }
  const deepCount = infos.filter((info) => info.highBitDepth).length
  if (deepCount > 0) {
    notes.push(`${deepCount} image${deepCount === 1 ? ' is' : 's are'} 16-bit; reduced to 8 bits per channel.`)
  }
  return notes
}

function noImagesError(root: string, skipped: SkippedFile[]): DatasetError {
  const examples = skipped
    .slice(0, 3)
    .map((s) => `${relative(root, s.path) || s.path}: ${s.reason}`)
    .join('; ')
  return new DatasetError(
    root,
    `No image in ${root} could be loaded: ${skipped.length} file${skipped.length === 1 ? ' was' : 's were'} skipped` +
      (examples ? ` (${examples}${skipped.length > 3 ? '; ...' : ''})` : '') +
      '.'
  )
}
