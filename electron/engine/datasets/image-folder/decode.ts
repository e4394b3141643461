// Reading images with sharp: the header pass (size, colour, alpha, depth), the size the whole set
// is loaded at, decoding each file to it, and what to say about a file that does not decode.
import sharp from 'sharp'
import { elementAt } from '../../../../models/arrays'
import { open, stat } from 'node:fs/promises'
import { extname } from 'node:path'
import type { FitPolicy } from '../common'
import { describeFsError, errnoCode, readRegularFile } from '../errors'
import { UNSUPPORTED_EXTENSIONS, VANISHED, hasImageExtension, sniffImageFormat, type FoundFile } from './scan'

/** Largest image file decoded (a 16k x 16k PNG is well below it) and largest labels.csv read. */
const IMAGE_MAX_BYTES = 256 * 2 ** 20
/** Sources whose typical shorter side is below this get 32x32 by default, others 64x64. */
const SMALL_SOURCE_SIDE = 64
/** Same-size sources up to this side are kept at their own size by default. */
const KEEP_SOURCE_MAX_SIDE = 32
const WHITE = { r: 255, g: 255, b: 255 }

export interface HeaderInfo {
  width: number
  height: number
  colour: boolean
  hasAlpha: boolean
  highBitDepth: boolean
}

export type Outcome<T> = { ok: true; value: T } | { ok: false; reason: string }
export const OK: Outcome<null> = { ok: true, value: null }

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
  const [firstLine = ''] = message.split('\n')
  return firstLine.trim().replace(/:$/, '') || 'unknown decoder error'
}

/**
 * Works out, after sharp failed on a file, what is wrong in words a user can act on: sharp's own
 * messages ("Input file is missing") do not separate a deleted file from a permission problem.
 */
export async function diagnose(path: string, error: unknown): Promise<string> {
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

export async function readHeader(file: FoundFile): Promise<Outcome<HeaderInfo>> {
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

export interface Target {
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
  const [first] = sizes
  if (!first) throw new Error('no image sizes to choose from')
  const allSame = sizes.every((s) => s.width === first.width && s.height === first.height)
  if (allSame && Math.max(first.width, first.height) <= KEEP_SOURCE_MAX_SIDE) {
    return { width: first.width, height: first.height }
  }
  const shorterSides = sizes.map((s) => Math.min(s.width, s.height)).sort((a, b) => a - b)
  const median = elementAt(shorterSides, Math.floor(shorterSides.length / 2))
  const side = median < SMALL_SOURCE_SIDE ? 32 : 64
  return { width: side, height: side }
}

export async function decodeImage(file: FoundFile, header: HeaderInfo, target: Target): Promise<Outcome<Uint8Array>> {
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
