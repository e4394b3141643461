// Building blocks written directly on tf ops with named variables, so that a model reads top to
// bottom and its weights save under stable names. Initialisation follows PyTorch's defaults
// (uniform in +-1/sqrt(fan_in)) so that the benchmark compares like with like.
import * as tf from '@tensorflow/tfjs'
import { stopGradient } from './distributions'

export interface ImageShape {
  height: number
  width: number
  channels: number
}

export const pixelCount = (s: ImageShape): number => s.height * s.width * s.channels

/** Owns every trainable variable of a model under a unique name; a seed makes initialisation reproducible. */
let storeCount = 0

export class ParameterStore {
  private readonly variables = new Map<string, tf.Variable>()
  private seedCounter: number
  /** tf.Variable names are global to the tf engine: each store prefixes its own. */
  private readonly prefix = `model${++storeCount}/`

  constructor(seed: number) {
    this.seedCounter = seed * 7919 + 1
  }

  uniform(name: string, shape: number[], bound: number): tf.Variable {
    const init = tf.randomUniform(shape, -bound, bound, 'float32', this.seedCounter++)
    return this.add(name, init)
  }

  constant(name: string, shape: number[], value: number, trainable = true): tf.Variable {
    return this.add(name, tf.fill(shape, value), trainable)
  }

  /**
   * A variable with the values `make` computes from the store's next seed (a layout, say). A
   * variable that is not `trainable` is saved and restored with the rest but never gets a gradient.
   */
  seeded(name: string, shape: number[], make: (seed: number) => Float32Array, trainable = true): tf.Variable {
    return this.add(name, tf.tensor(make(this.seedCounter++), shape, 'float32'), trainable)
  }

  private add(name: string, init: tf.Tensor, trainable = true): tf.Variable {
    if (this.variables.has(name)) throw new Error(`duplicate parameter name ${name}`)
    const variable = tf.variable(init, trainable, this.prefix + name)
    init.dispose()
    this.variables.set(name, variable)
    return variable
  }

  entries(): [string, tf.Variable][] {
    return [...this.variables.entries()]
  }

  list(): tf.Variable[] {
    return [...this.variables.values()]
  }

  /** The variables training differentiates, in list() order. */
  trainable(): tf.Variable[] {
    return this.list().filter((v) => v.trainable)
  }

  count(): number {
    return this.list().reduce((sum, v) => sum + v.size, 0)
  }

  /** Replace every value from named tensors (a checkpoint); shapes must match. */
  assign(named: Record<string, tf.Tensor>): void {
    for (const [name, variable] of this.variables) {
      const value = named[name]
      if (!value) throw new Error(`checkpoint has no weight "${name}"`)
      if (value.shape.join('x') !== variable.shape.join('x')) {
        throw new Error(`checkpoint weight "${name}" has shape ${value.shape} where the model has ${variable.shape}`)
      }
      variable.assign(value)
    }
  }

  dispose(): void {
    for (const v of this.variables.values()) v.dispose()
    this.variables.clear()
  }
}

export class Dense {
  readonly weight: tf.Variable
  readonly bias: tf.Variable
  constructor(
    store: ParameterStore,
    name: string,
    inDim: number,
    readonly outDim: number
  ) {
    const bound = 1 / Math.sqrt(inDim)
    this.weight = store.uniform(`${name}/kernel`, [inDim, outDim], bound)
    this.bias = store.uniform(`${name}/bias`, [outDim], bound)
  }
  /** `frozen`: the same values with no gradient to the weights (an adversary seen by its opponent). */
  apply(x: tf.Tensor2D, frozen = false): tf.Tensor2D {
    if (frozen) return x.matMul(stopGradient(this.weight as tf.Tensor2D)).add(stopGradient(this.bias as tf.Tensor))
    return x.matMul(this.weight as tf.Tensor2D).add(this.bias)
  }
  /** The same map as a Keras layer holding this layer's current values (an exported LayersModel). */
  toLayers(x: tf.SymbolicTensor, name: string, activation?: 'relu'): tf.SymbolicTensor {
    return tf.layers.dense({ units: this.outDim, activation, name, weights: [this.weight, this.bias] }).apply(x) as tf.SymbolicTensor
  }
}

/** 3x3 convolution, stride 2, 'same' padding: halves height and width. */
export class DownConv {
  readonly filter: tf.Variable
  readonly bias: tf.Variable
  constructor(
    store: ParameterStore,
    name: string,
    inChannels: number,
    readonly outChannels: number
  ) {
    const bound = 1 / Math.sqrt(inChannels * 9)
    this.filter = store.uniform(`${name}/kernel`, [3, 3, inChannels, outChannels], bound)
    this.bias = store.uniform(`${name}/bias`, [outChannels], bound)
  }
  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.conv2d(x, this.filter as tf.Tensor4D, 2, 'same').add(this.bias)
  }
  toLayers(x: tf.SymbolicTensor, name: string, activation?: 'relu'): tf.SymbolicTensor {
    const layer = tf.layers.conv2d({
      filters: this.outChannels,
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      activation,
      name,
      weights: [this.filter, this.bias]
    })
    return layer.apply(x) as tf.SymbolicTensor
  }
}

/** 3x3 transposed convolution, stride 2: doubles height and width (PyTorch's padding=1, output_padding=1). */
export class UpConv {
  readonly filter: tf.Variable
  readonly bias: tf.Variable
  constructor(
    store: ParameterStore,
    name: string,
    readonly inChannels: number,
    readonly outChannels: number
  ) {
    const bound = 1 / Math.sqrt(outChannels * 9)
    // conv2dTranspose filters are [h, w, outChannels, inChannels].
    this.filter = store.uniform(`${name}/kernel`, [3, 3, outChannels, inChannels], bound)
    this.bias = store.uniform(`${name}/bias`, [outChannels], bound)
  }
  apply(x: tf.Tensor4D): tf.Tensor4D {
    const [b, h, w] = x.shape
    return tf.conv2dTranspose(x, this.filter as tf.Tensor4D, [b, h * 2, w * 2, this.outChannels], 2, 'same').add(this.bias)
  }
  /** Keras keeps a transposed convolution's kernel as [h, w, out, in], as here. */
  toLayers(x: tf.SymbolicTensor, name: string, activation?: 'relu'): tf.SymbolicTensor {
    const layer = tf.layers.conv2dTranspose({
      filters: this.outChannels,
      kernelSize: 3,
      strides: 2,
      padding: 'same',
      activation,
      name,
      weights: [this.filter, this.bias]
    })
    return layer.apply(x) as tf.SymbolicTensor
  }
}

/** How many stride-2 stages a convolutional trunk uses for this image, or 0 for an MLP. */
export function convStages(shape: ImageShape): number {
  const side = Math.min(shape.height, shape.width)
  if (side < 16) return 0
  const stages = side >= 48 ? 3 : 2
  const divisor = 2 ** stages
  return shape.height % divisor === 0 && shape.width % divisor === 0 ? stages : 0
}

const CONV_CHANNELS = [32, 64, 128]
const MLP_HIDDEN = [512, 256]

/**
 * Image -> feature vector. Convolutional (32, 64[, 128] channels, stride 2) for images of 16 px and
 * more whose sides divide by the total stride, else a two-layer MLP.
 */
export class ImageTrunk {
  private readonly convs: DownConv[] = []
  private readonly denses: Dense[] = []
  readonly featureDim: number

  constructor(
    store: ParameterStore,
    name: string,
    readonly shape: ImageShape
  ) {
    const stages = convStages(shape)
    if (stages > 0) {
      let channels = shape.channels
      for (let i = 0; i < stages; i++) {
        this.convs.push(new DownConv(store, `${name}/conv${i}`, channels, CONV_CHANNELS[i]))
        channels = CONV_CHANNELS[i]
      }
      const scale = 2 ** stages
      this.featureDim = (shape.height / scale) * (shape.width / scale) * channels
    } else {
      let dim = pixelCount(shape)
      for (let i = 0; i < MLP_HIDDEN.length; i++) {
        this.denses.push(new Dense(store, `${name}/dense${i}`, dim, MLP_HIDDEN[i]))
        dim = MLP_HIDDEN[i]
      }
      this.featureDim = dim
    }
  }

  apply(x: tf.Tensor4D): tf.Tensor2D {
    if (this.convs.length) {
      let h = x
      for (const conv of this.convs) h = tf.relu(conv.apply(h))
      return h.reshape([x.shape[0], this.featureDim])
    }
    let h: tf.Tensor2D = x.reshape([x.shape[0], pixelCount(this.shape)])
    for (const dense of this.denses) h = tf.relu(dense.apply(h))
    return h
  }

  toLayers(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
    let h = x
    this.convs.forEach((conv, i) => (h = conv.toLayers(h, `${name}_conv${i}`, 'relu')))
    h = tf.layers.flatten({ name: `${name}_flatten` }).apply(h) as tf.SymbolicTensor
    this.denses.forEach((dense, i) => (h = dense.toLayers(h, `${name}_dense${i}`, 'relu')))
    return h
  }
}

/** Feature vector -> (mean, log-variance) of a diagonal Gaussian. */
export class GaussianHead {
  private readonly mean: Dense
  private readonly logvar: Dense
  constructor(
    store: ParameterStore,
    name: string,
    inDim: number,
    readonly dim: number
  ) {
    this.mean = new Dense(store, `${name}/mean`, inDim, dim)
    this.logvar = new Dense(store, `${name}/logvar`, inDim, dim)
  }
  apply(h: tf.Tensor2D): { mu: tf.Tensor2D; logvar: tf.Tensor2D } {
    return { mu: this.mean.apply(h), logvar: this.logvar.apply(h) }
  }
  toLayers(h: tf.SymbolicTensor, name: string): { mu: tf.SymbolicTensor; logvar: tf.SymbolicTensor } {
    return { mu: this.mean.toLayers(h, `${name}_mean`), logvar: this.logvar.toLayers(h, `${name}_logvar`) }
  }
}

/** Vector -> image-shaped pre-activations (Bernoulli logits or Gaussian means before the sigmoid). */
export class ImageDecoder {
  private readonly denses: Dense[] = []
  private readonly ups: UpConv[] = []
  private readonly seedShape: [number, number, number] = [0, 0, 0]

  constructor(
    store: ParameterStore,
    name: string,
    inDim: number,
    readonly shape: ImageShape
  ) {
    const stages = convStages(shape)
    if (stages > 0) {
      const scale = 2 ** stages
      const top = CONV_CHANNELS[stages - 1]
      this.seedShape = [shape.height / scale, shape.width / scale, top]
      this.denses.push(new Dense(store, `${name}/dense0`, inDim, this.seedShape[0] * this.seedShape[1] * top))
      let channels = top
      for (let i = stages - 2; i >= 0; i--) {
        this.ups.push(new UpConv(store, `${name}/up${stages - 2 - i}`, channels, CONV_CHANNELS[i]))
        channels = CONV_CHANNELS[i]
      }
      this.ups.push(new UpConv(store, `${name}/up${stages - 1}`, channels, shape.channels))
    } else {
      let dim = inDim
      const hidden = [...MLP_HIDDEN].reverse()
      for (let i = 0; i < hidden.length; i++) {
        this.denses.push(new Dense(store, `${name}/dense${i}`, dim, hidden[i]))
        dim = hidden[i]
      }
      this.denses.push(new Dense(store, `${name}/dense${hidden.length}`, dim, pixelCount(shape)))
    }
  }

  apply(v: tf.Tensor2D): tf.Tensor4D {
    const b = v.shape[0]
    const { height, width, channels } = this.shape
    if (this.ups.length) {
      let h: tf.Tensor4D = tf.relu(this.denses[0].apply(v)).reshape([b, ...this.seedShape])
      this.ups.forEach((up, i) => {
        h = up.apply(h)
        if (i < this.ups.length - 1) h = tf.relu(h)
      })
      return h
    }
    let h = v
    this.denses.forEach((dense, i) => {
      h = dense.apply(h)
      if (i < this.denses.length - 1) h = tf.relu(h)
    })
    return h.reshape([b, height, width, channels])
  }

  /** Pre-activations as Keras layers; the likelihood's mean (a sigmoid) is the exporter's to add. */
  toLayers(v: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
    const { height, width, channels } = this.shape
    if (this.ups.length) {
      let h = this.denses[0].toLayers(v, `${name}_dense0`, 'relu')
      h = tf.layers.reshape({ targetShape: this.seedShape, name: `${name}_reshape` }).apply(h) as tf.SymbolicTensor
      this.ups.forEach((up, i) => (h = up.toLayers(h, `${name}_up${i}`, i < this.ups.length - 1 ? 'relu' : undefined)))
      return h
    }
    let h = v
    this.denses.forEach((dense, i) => (h = dense.toLayers(h, `${name}_dense${i}`, i < this.denses.length - 1 ? 'relu' : undefined)))
    return tf.layers.reshape({ targetShape: [height, width, channels], name: `${name}_reshape` }).apply(h) as tf.SymbolicTensor
  }
}

/** A small MLP with ReLU between layers (the SRVAE's conditional prior network, the CDVAE's z_u adversary). */
export class Mlp {
  private readonly layers: Dense[] = []
  constructor(store: ParameterStore, name: string, dims: number[]) {
    for (let i = 0; i + 1 < dims.length; i++) this.layers.push(new Dense(store, `${name}/dense${i}`, dims[i], dims[i + 1]))
  }
  apply(x: tf.Tensor2D, frozen = false): tf.Tensor2D {
    let h = x
    this.layers.forEach((layer, i) => {
      h = layer.apply(h, frozen)
      if (i < this.layers.length - 1) h = tf.relu(h)
    })
    return h
  }
  toLayers(x: tf.SymbolicTensor, name: string): tf.SymbolicTensor {
    let h = x
    this.layers.forEach((layer, i) => (h = layer.toLayers(h, `${name}_dense${i}`, i < this.layers.length - 1 ? 'relu' : undefined)))
    return h
  }
}

/** An input of an exported network: an image [h, w, c] or a vector [dim]. */
export const layersInput = (name: string, shape: number[]): tf.SymbolicTensor => tf.input({ shape, name })

/** The likelihood's mean from a decoder's pre-activations: the sigmoid, as ImageLikelihood.mean. */
export const layersImageMean = (pre: tf.SymbolicTensor, name: string): tf.SymbolicTensor =>
  tf.layers.activation({ activation: 'sigmoid', name }).apply(pre) as tf.SymbolicTensor

export const layersConcat = (inputs: tf.SymbolicTensor[], name: string): tf.SymbolicTensor => tf.layers.concatenate({ name }).apply(inputs) as tf.SymbolicTensor
