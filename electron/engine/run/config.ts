// A new run's settings from a dataset and what was asked: its training view of the data, its
// model config (one "latent size" knob spread over the family's spaces, the objective's options
// checked against the family), and the check that a stored run fits the dataset it reopens with.
import { defaultModelConfig, latentDimsFor, type ModelConfig, type ModelFamily } from '../../../models/index'
import type { TrainingData } from '../../../models/data'
import type { ObjectiveArgs } from '../../common/contract'
import type { ImageDataset } from '../datasets/types'

export function trainingData(dataset: ImageDataset, maxTrainItems?: number): TrainingData {
  const train: number[] = []
  const heldOut: number[] = []
  dataset.split.forEach((s, i) => (s ? heldOut : train).push(i))
  return {
    shape: { height: dataset.height, width: dataset.width, channels: dataset.channels },
    pixels: dataset.pixels,
    labels: dataset.labels,
    numClasses: dataset.classNames.length,
    trainIndices: Int32Array.from(maxTrainItems ? train.slice(0, maxTrainItems) : train),
    heldOutIndices: Int32Array.from(heldOut)
  }
}

export const isLabelled = (dataset: ImageDataset): boolean => dataset.labels !== null && dataset.classNames.length > 1

export function modelConfigFor(
  dataset: ImageDataset,
  family: ModelFamily,
  options: { seed: number; latentDim?: number; conditionalPrior?: boolean; classPriorRadius?: number; objective?: ObjectiveArgs }
): ModelConfig {
  const labelled = isLabelled(dataset)
  if (family === 'cdvae' && !labelled) {
    throw new Error('the CDVAE learns a prior per class and needs labelled data (class subfolders, IDX labels or labels.csv)')
  }
  if (options.conditionalPrior && !labelled) throw new Error('a class-conditional prior needs labelled data with at least two classes')
  const config = defaultModelConfig(
    family,
    { height: dataset.height, width: dataset.width, channels: dataset.channels },
    labelled ? dataset.classNames.length : 0,
    {
      seed: options.seed,
      conditionalPrior: options.conditionalPrior ?? false,
      ...(options.classPriorRadius !== undefined ? { classPriorRadius: options.classPriorRadius } : {}),
      ...(options.latentDim ? { latentDims: latentDimsFor(family, options.latentDim) } : {})
    }
  )
  const asked = options.objective ?? {}
  const spaces = Object.keys(config.latentDims)
  for (const space of Object.keys(asked.klWeights ?? {})) {
    if (!spaces.includes(space))
      throw new Error(`a KL weight for "${space}": the ${family.toUpperCase()} has no such latent space (it has ${spaces.join(', ')})`)
  }
  if (asked.freeSpaceIndependence && family !== 'cdvae') throw new Error("the class-independence term applies to the CDVAE's z_u only")
  if (asked.freeSpaceAdversary && family !== 'cdvae') throw new Error("the class adversary applies to the CDVAE's z_u only")
  const base = config.objective
  config.objective = {
    klWeights: { ...base.klWeights, ...asked.klWeights },
    freeBits: asked.freeBits ?? base.freeBits,
    warmupSteps: asked.warmupSteps ?? base.warmupSteps,
    freeSpaceIndependence: asked.freeSpaceIndependence ?? base.freeSpaceIndependence,
    freeSpaceAdversary: asked.freeSpaceAdversary ?? base.freeSpaceAdversary
  }
  return config
}

/** Throws unless `dataset` is what a model of `config` was trained on: image shape and classes. */
export function checkDatasetFits(config: ModelConfig, dataset: ImageDataset): void {
  const { height, width, channels } = config.image
  if (height !== dataset.height || width !== dataset.width || channels !== dataset.channels) {
    throw new Error(`the model expects ${width}x${height}x${channels} images but the dataset loads as ${dataset.width}x${dataset.height}x${dataset.channels}`)
  }
  if (config.numClasses > 0 && config.numClasses !== dataset.classNames.length) {
    throw new Error(`the model was trained on ${config.numClasses} classes but the dataset has ${dataset.classNames.length}`)
  }
}
