// A training run's life, shared by the Engine and the CLI so that both write the same folder the
// same way: its settings from what was asked (the family's defaults for this much data), its
// first files, resuming from the last checkpoint with the options it was started with, training
// with checkpoints, how it ended (outcome.json; a diverged model rolled back to its last good
// checkpoint), and, once trained, every item's latents and the measurements stored with it.
import * as tf from '@tensorflow/tfjs'
import { createModel, type VaeFamilyModel } from '../../../models/index'
import { decodeCheckpointWeights, restoreCheckpoint, restoreOptimizerState, serializeCheckpoint, type SerializedCheckpoint } from '../../../models/checkpoint'
import type { ModelMetrics } from '../../../models/metrics'
import {
  defaultTrainOptions,
  Trainer,
  TrainingCancelledError,
  TrainingDivergedError,
  type EpochSummary,
  type StepProgress,
  type TrainingPosition,
  type TrainOptions
} from '../../../models/train'
import type { TrainArgs } from '../../common/contract'
import { isGpuBackend } from '../backend/select'
import type { ImageDataset } from '../datasets/types'
import { createTrainer } from '../training/parallel-trainer'
import { checkDatasetFits, modelConfigFor, trainingData } from './config'
import { RunFolder, type Latents, type RunRecord } from './folder'
import { encodeAll, measureModel, weightsDigest } from './measure'

/** How a run's training ended, as train.finished reports it. */
export interface TrainingOutcome {
  outcome: 'completed' | 'cancelled' | 'failed'
  message: string
}

/** The options a new run trains with: the family's defaults for this many items, overridden by what was asked. */
export function trainOptionsFor(trainCount: number, args: TrainArgs, backend: string): TrainOptions {
  const defaults = defaultTrainOptions(trainCount, args.family, isGpuBackend(backend))
  return {
    ...defaults,
    epochs: args.epochs ?? defaults.epochs,
    batchSize: args.batchSize ?? defaults.batchSize,
    learningRate: args.learningRate ?? defaults.learningRate,
    seed: args.seed ?? defaults.seed
  }
}

/** A new run in `folder`: its config and options from `args` (checked before anything is written), its run.json, a fresh model and trainer. */
export async function startRun(folder: RunFolder, dataset: ImageDataset, args: TrainArgs, backend: string, runId?: string): Promise<TrainingRun> {
  const data = trainingData(dataset, args.maxTrainItems)
  const options = trainOptionsFor(data.trainIndices.length, args, backend)
  const config = modelConfigFor(dataset, args.family, {
    seed: options.seed,
    latentDim: args.latentDim,
    conditionalPrior: args.conditionalPrior,
    classPriorRadius: args.classPriorRadius,
    objective: args.objective
  })
  await folder.create()
  const record: RunRecord = {
    ...(runId ? { runId } : {}),
    config,
    options,
    dataset: dataset.report.source,
    ...(args.maxTrainItems ? { maxTrainItems: args.maxTrainItems } : {})
  }
  await folder.writeRecord(record)
  // wasm and cpu run one thread each: on 2+ cores the steps run data-parallel in worker threads.
  return new TrainingRun(folder, record, createTrainer(createModel(config), data, options, backend), [])
}

/** A stored run as it can be continued: run.json, its latest checkpoint, where it stopped and the options it goes on with. */
export interface ResumableRun {
  folder: RunFolder
  record: RunRecord
  saved: SerializedCheckpoint
  position: TrainingPosition
  /** run.json's options; with `epochs` changed when the caller asked for more (or fewer). */
  options: TrainOptions
  /** True when the checkpoint already has every planned epoch: nothing to resume. */
  finished: boolean
}

/** Reads what resuming needs (and clears what interrupted writes left behind); trains nothing yet. */
export async function readResumable(folder: RunFolder, epochs?: number): Promise<ResumableRun> {
  const record = await folder.readRecord()
  const saved = await folder.latestCheckpoint()
  if (!saved) throw new Error(`${folder.dir} has no checkpoint to resume from`)
  await folder.removeStaleTemporaries()
  const position = saved.document.position ?? { epoch: 0, stepInEpoch: 0, globalStep: 0 }
  const options = { ...record.options, epochs: epochs ?? record.options.epochs }
  return { folder, record, saved, position, options, finished: position.epoch >= options.epochs }
}

/** The resumable run's model, optimizer state and position restored on `dataset` (checked to be the one it was trained on). */
export async function resumeRun(run: ResumableRun, dataset: ImageDataset, backend: string): Promise<TrainingRun> {
  const { folder, record, saved, options } = run
  if (run.finished) throw new Error(`this run is finished (${run.position.epoch} of ${options.epochs} epochs): open it, or train a new one`)
  checkDatasetFits(saved.document.config, dataset)
  const trainer = createTrainer(await restoreCheckpoint(saved), trainingData(dataset, record.maxTrainItems), options, backend)
  await restoreOptimizerState(saved, trainer.optimizer)
  trainer.position = { ...run.position }
  const resumed = { ...record, options }
  if (options.epochs !== record.options.epochs) await folder.writeRecord(resumed)
  return new TrainingRun(folder, resumed, trainer, [...((saved.document.meta.history as EpochSummary[] | undefined) ?? [])])
}

/** A trained run's model restored from its latest checkpoint, with its run.json. */
export async function openStoredRun(folder: RunFolder): Promise<{ record: RunRecord; saved: SerializedCheckpoint; model: VaeFamilyModel }> {
  const record = await folder.readRecord()
  const saved = await folder.latestCheckpoint()
  if (!saved) throw new Error(`${folder.dir} has no checkpoint yet`)
  return { record, saved, model: await restoreCheckpoint(saved) }
}

/** One run being trained: its trainer, the epochs' history so far, and the checkpoints it saves into its folder. */
export class TrainingRun {
  /** Where the last checkpoint was taken (null before the first). */
  lastCheckpoint: { epoch: number; stepInEpoch: number } | null = null

  constructor(
    readonly folder: RunFolder,
    readonly record: RunRecord,
    readonly trainer: Trainer,
    /** Every finished epoch's summary, the stored ones first when resumed. */
    readonly history: EpochSummary[]
  ) {}

  get model(): VaeFamilyModel {
    return this.trainer.model
  }

  get epochs(): number {
    return this.record.options.epochs
  }

  /**
   * Trains to the planned epochs, with checkpoints, and says how it ended; outcome.json says it
   * too (and history.json once finished). Cancelling keeps the last checkpoint for a resume; a
   * diverged model is rolled back to its last good checkpoint. The trainer is released either way.
   */
  async train(callbacks: { onStep?(progress: StepProgress): void; onEpoch?(summary: EpochSummary): void } = {}): Promise<TrainingOutcome> {
    const { folder, trainer, history } = this
    try {
      await trainer.run({
        onStep: callbacks.onStep,
        onEpoch: (summary) => {
          history.push(summary)
          callbacks.onEpoch?.(summary)
        },
        onCheckpoint: async (position) => {
          await folder.saveCheckpoint(await serializeCheckpoint(this.model, trainer.optimizer, { ...position }, { history }), position.globalStep)
          this.lastCheckpoint = { epoch: position.epoch, stepInEpoch: position.stepInEpoch }
        }
      })
      const message = `trained ${this.epochs} epochs`
      await folder.writeHistory(history)
      await folder.writeOutcome({ state: 'finished', message })
      return { outcome: 'completed', message }
    } catch (error) {
      if (error instanceof TrainingCancelledError) {
        const kept = this.lastCheckpoint
        const message = kept
          ? `training cancelled; the checkpoint after ${kept.epoch} epoch(s) and ${kept.stepInEpoch} step(s) is kept and can be resumed`
          : 'training cancelled before its first checkpoint: nothing was saved'
        if (kept) await folder.writeOutcome({ state: 'interrupted', message }).catch(() => undefined)
        return { outcome: 'cancelled', message }
      }
      let message = (error as Error).message
      if (error instanceof TrainingDivergedError) {
        message += (await this.rollBack()) ? '; the model was rolled back to its last good checkpoint' : '; no earlier checkpoint to roll back to'
      }
      await folder.writeOutcome({ state: 'failed', message }).catch(() => undefined)
      return { outcome: 'failed', message }
    } finally {
      trainer.dispose()
    }
  }

  /** The latest checkpoint's weights back into the model (false when there is none). */
  private async rollBack(): Promise<boolean> {
    const saved = await this.folder.latestCheckpoint()
    if (!saved) return false
    const named = decodeCheckpointWeights(saved)
    this.model.parameters.assign(named)
    tf.dispose(Object.values(named))
    return true
  }
}

/** Every item's posterior means, written with the digest of the weights that made them (`digest`, when the caller has it already). */
export async function encodeAndStore(
  folder: RunFolder,
  model: VaeFamilyModel,
  dataset: ImageDataset,
  onProgress?: (done: number, total: number) => void,
  digest?: string
): Promise<{ latents: Latents; weights: string }> {
  const weights = digest ?? (await weightsDigest(model))
  const latents = await encodeAll(model, dataset, onProgress)
  await folder.writeLatents(latents, dataset.split.length, weights)
  return { latents, weights }
}

/** What the model learned (measureModel), written to metrics.json. */
export async function measureAndStore(
  folder: RunFolder,
  model: VaeFamilyModel,
  dataset: ImageDataset,
  latents: Latents,
  onIwaeProgress?: (done: number, total: number) => void
): Promise<ModelMetrics> {
  const metrics = await measureModel(model, dataset, latents, { onIwaeProgress })
  await folder.writeMetrics(metrics)
  return metrics
}
