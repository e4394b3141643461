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
//
// Its parts: image-folder/scan.ts, layout.ts, labels-csv.ts, decode.ts and report.ts.
import { elementAt } from '../../../models/arrays'
import { basename, resolve } from 'node:path'
import {
  assignHeldOutSplit,
  classBalanceNotes,
  countClasses,
  DEFAULT_HELD_OUT_FRACTION,
  DEFAULT_SEED,
  defaultConcurrency,
  type LoadOptions,
  mapPool,
  splitNote
} from './common'
import { cacheKey, fingerprintFiles, pruneCache, readCache, touchCacheEntry, writeCache } from './cache'
import { DatasetError } from './errors'
import { ProgressReporter } from './progress'
import type { ImageDataset, ProgressCallback, SkippedFile } from './types'
import { type Scan, comparePaths, scanTree, sortScan } from './image-folder/scan'
import { type Candidate, planLayout } from './image-folder/layout'
import { type HeaderInfo, type Outcome, OK, readHeader, type Target, chooseTargetSize, decodeImage } from './image-folder/decode'
import { describeSourceSizes, imageFormatNotes, noImagesError } from './image-folder/report'

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
    const candidate = elementAt(plan.candidates, i)
    if (outcome.ok) readable.push({ candidate, header: outcome.value })
    else {
      skipped.push({ path: candidate.file.absolute, reason: outcome.reason })
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
    const { candidate } = elementAt(readable, index)
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
        if (elementAt(classCounts, c) > 0) remap[c] = keptNames.push(name) - 1
      })
      labels = labels.map((label) => elementAt(remap, label))
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
