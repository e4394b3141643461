// Which layout a scanned folder has (class folders, flat, flat with labels.csv) and so which files
// are loaded with which class.
import { naturalCompare } from '../common'
import type { LoadReport, SkippedFile } from '../types'
import { LABELS_CSV, hasImageExtension, type FoundFile } from './scan'
import { planLabelsCsv } from './labels-csv'

export interface Candidate {
  file: FoundFile
  label: number
}

export interface LayoutPlan {
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

export async function planLayout(root: string, files: FoundFile[]): Promise<LayoutPlan> {
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
