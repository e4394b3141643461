// The runs the app keeps: where they live, the list the window shows, renaming, and the figures
// that runs.compare lays side by side. Each run's files are read through its RunFolder.
import { readdir } from 'node:fs/promises'
import { homedir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import type { EpochSummary } from '../../../models/train'
import type { RunComparison, RunListing } from '../../common/contract'
import { RunFolder } from './folder'

/** Where the app keeps runs and the dataset cache (the desktop app passes its own userData folder). */
export function defaultDataDir(): string {
  return process.env.CARTOGRAPHER_DATA_DIR ?? join(process.env.XDG_DATA_HOME ?? join(homedir(), '.local', 'share'), 'latent-cartographer')
}

/** The generated shapes set has no folder: a run trained on it reopens with the built-in dataset. */
export const isGeneratedSource = (source: string): boolean => source.startsWith('generated shapes')

/** Runs under `runsDir` that have a checkpoint, newest first; `active` is the folder training now. */
export async function listRuns(runsDir: string, active: string | null = null): Promise<RunListing[]> {
  let names: string[]
  try {
    names = await readdir(runsDir)
  } catch {
    return []
  }
  const runs: RunListing[] = []
  for (const name of names) {
    try {
      const folder = new RunFolder(join(runsDir, name))
      const run = await folder.readRecord()
      const latest = await folder.latestPointer()
      const checkpoint = await folder.latestCheckpointDocument(latest)
      if (!latest || !checkpoint) continue
      const outcome = await folder.readOutcome()
      const epochsDone = checkpoint.position?.epoch ?? 0
      const epochsPlanned = run.options?.epochs ?? epochsDone
      const state: RunListing['state'] =
        folder.dir === active ? 'training' : outcome?.state === 'failed' ? 'failed' : epochsDone >= epochsPlanned ? 'finished' : 'interrupted'
      const heldOut = (checkpoint.meta?.history as EpochSummary[] | undefined)?.at(-1)?.heldOut.total
      runs.push({
        path: folder.dir,
        name,
        family: run.config.family,
        dataset: run.dataset,
        savedAt: latest.savedAt,
        step: latest.step,
        state,
        epochsDone,
        epochsPlanned,
        latentDims: run.config.latentDims,
        heldOutNegElbo: typeof heldOut === 'number' ? heldOut : null,
        title: typeof run.title === 'string' && run.title ? run.title : null
      })
    } catch {
      // A run without run.json or a checkpoint (stopped before its first save) is not listed.
    }
  }
  return runs.sort((a, b) => b.savedAt.localeCompare(a.savedAt))
}

/**
 * `path` as a run folder of the app's own runs folder (a direct child holding run.json), for the
 * requests that change or delete a run: nothing outside the app's data is renamed or removed.
 */
export async function ownRunFolder(runsDir: string, path: string): Promise<RunFolder> {
  const folder = new RunFolder(resolve(path))
  if (dirname(folder.dir) !== resolve(runsDir))
    throw new Error(`${folder.dir} is not one of the app's runs (in ${runsDir}): only those can be renamed or deleted here`)
  await folder.readRecord()
  return folder
}

/** Gives a run a name (run.json's title; empty clears it). */
export async function renameRun(folder: RunFolder, title: string): Promise<void> {
  const record = await folder.readRecord()
  const trimmed = title.trim()
  if (trimmed) record.title = trimmed
  else delete record.title
  await folder.writeRecord(record)
}

/** A run's curves by epoch and figures, for runs.compare. */
export async function compareRun(path: string): Promise<RunComparison> {
  const folder = new RunFolder(resolve(path))
  const record = await folder.readRecord()
  const document = await folder.latestCheckpointDocument()
  const history = ((document?.meta.history as EpochSummary[] | undefined) ?? []).map(({ epoch, heldOut }) => ({ epoch, heldOut }))
  return {
    path: folder.dir,
    title: record.title ?? null,
    name: folder.name,
    family: record.config.family,
    dataset: record.dataset,
    latentDims: record.config.latentDims,
    epochsDone: document?.position?.epoch ?? history.length,
    epochs: history,
    metrics: await folder.readMetrics()
  }
}
