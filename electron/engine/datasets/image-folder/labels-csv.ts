// labels.csv: "file,label" lines (a header row, quoting and other delimiters tolerated) giving a
// flat folder its classes.
import { join } from 'node:path'
import { naturalCompare } from '../common'
import { DatasetError, describeFsError, readRegularFile } from '../errors'
import { LABELS_CSV, hasImageExtension, type FoundFile } from './scan'
import type { LayoutPlan } from './layout'

const LABELS_CSV_MAX_BYTES = 64 * 2 ** 20
/** Longest class name labels.csv may give; longer ones (or ones with control characters) are refused. */
const MAX_LABEL_LENGTH = 100

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

export async function planLabelsCsv(root: string, files: FoundFile[]): Promise<LayoutPlan> {
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
      if (HEADER_FILE_WORDS.has(first ?? '') || HEADER_LABEL_WORDS.has(second ?? '')) return
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
        (plan.skipped[0] ? ` (first problem: ${plan.skipped[0].reason}).` : '.')
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
