// What the load report says about the images it loaded (sizes, resizing, colour, transparency,
// depth) and the error when none could be loaded.
import { relative } from 'node:path'
import { DatasetError } from '../errors'
import type { SkippedFile } from '../types'
import type { HeaderInfo, Target } from './decode'

export function describeSourceSizes(sizes: HeaderInfo[]): string {
  const [first] = sizes
  if (!first) return 'no images'
  let smallest = first
  let largest = first
  let mixed = false
  for (const s of sizes) {
    if (s.width !== first.width || s.height !== first.height) mixed = true
    if (s.width * s.height < smallest.width * smallest.height) smallest = s
    if (s.width * s.height > largest.width * largest.height) largest = s
  }
  if (!mixed) return `${smallest.width}x${smallest.height}`
  return `mixed: ${smallest.width}x${smallest.height} .. ${largest.width}x${largest.height}`
}

export function imageFormatNotes(infos: HeaderInfo[], target: Target, colourCount: number): string[] {
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

export function noImagesError(root: string, skipped: SkippedFile[]): DatasetError {
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
