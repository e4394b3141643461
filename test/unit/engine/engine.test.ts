// The engine under careless use (issue 12): a double-click on Train starts one run, the newest of
// two dataset.open requests wins, relative paths are refused, and a reloaded window finds what the
// engine holds (engine.state).
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { beforeAll, describe, expect, it } from 'vitest'
import { base64ToBytes, type EngineState, type Events, type ImagePayload, type RequestName, type ThumbnailAtlas } from '../../../electron/common/contract'
import { Engine } from '../../../electron/engine/engine'
import { writeShapesFolder } from '../../../electron/engine/datasets/shapes'
import type { ImageDataset } from '../../../electron/engine/datasets/types'
import { thumbnailAtlas } from '../../../electron/engine/datasets/thumbnails'

let small: string
let other: string
beforeAll(async () => {
  small = await mkdtemp(join(tmpdir(), 'cartographer-engine-a-'))
  other = await mkdtemp(join(tmpdir(), 'cartographer-engine-b-'))
  await writeShapesFolder(small, { countPerClass: 20, size: 16, seed: 1 })
  await writeShapesFolder(other, { countPerClass: 10, size: 16, seed: 2 })
  process.env.CARTOGRAPHER_TRAIN_WORKERS = '1'
})

function makeEngine() {
  const events: { name: keyof Events; payload: unknown }[] = []
  const engine = new Engine({
    dataDir: join(tmpdir(), `cartographer-engine-data-${Math.random()}`),
    backend: 'wasm',
    emit: (name, payload) => events.push({ name, payload })
  })
  let id = 1
  const ask = <T>(name: RequestName, args: object = {}) => engine.handle({ type: 'request', id: id++, name, args } as never) as Promise<T>
  return { engine, events, ask }
}

describe('the engine under careless use', () => {
  it('starts one training run when Train is pressed twice at once', async () => {
    const { ask, events } = makeEngine()
    await ask('dataset.open', { path: small })
    const results = await Promise.allSettled([
      ask('train.start', { family: 'vae', epochs: 1, latentDim: 2 }),
      ask('train.start', { family: 'vae', epochs: 1, latentDim: 2 })
    ])
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    expect((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason.message).toMatch(/already going/)
    await ask('train.cancel')
    expect(events.filter((e) => e.name === 'train.started')).toHaveLength(1)
  })

  it('keeps the dataset of the newest dataset.open when an older one finishes last', async () => {
    const { ask } = makeEngine()
    const first = ask('dataset.open', { path: small })
    const second = ask('dataset.open', { path: other })
    const [a, b] = await Promise.allSettled([first, second])
    expect(b.status).toBe('fulfilled')
    if (a.status === 'rejected') expect(a.reason.message).toMatch(/replaced by a later request/)
    const state = await ask<EngineState>('engine.state')
    expect(state.dataset?.itemCount).toBe(60)
  })

  it('sends one item at full resolution (the hover preview), and refuses an item the dataset lacks', async () => {
    const { ask } = makeEngine()
    await ask('dataset.open', { path: small })
    const atlas = await ask<ThumbnailAtlas>('dataset.thumbnails')
    const item = await ask<ImagePayload>('dataset.item', { index: 7 })
    expect([item.width, item.height, item.channels]).toEqual([16, 16, 1])
    // 120 small items fit the atlas at full size: the item is its cell, byte for byte.
    expect(atlas.downsample).toBe(1)
    const cell = base64ToBytes(atlas.base64).subarray(7 * 256, 8 * 256)
    expect(Array.from(base64ToBytes(item.base64))).toEqual(Array.from(cell))
    await expect(ask('dataset.item', { index: 120 })).rejects.toThrow(/no item 120; the dataset has 120/)
  })

  it('downsamples the thumbnail atlas by striding when every item at full size would pass its budget', () => {
    // 7,000 items of 64 x 64 grey: 28.7 MB, over the 24 MiB budget, so every second pixel.
    const count = 7000
    const pixels = new Uint8Array(count * 64 * 64)
    for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 7) % 251
    const atlas = thumbnailAtlas({ width: 64, height: 64, channels: 1, pixels, split: new Uint8Array(count) } as unknown as ImageDataset)
    expect([atlas.downsample, atlas.cellWidth, atlas.cellHeight, atlas.count]).toEqual([2, 32, 32, count])
    const bytes = base64ToBytes(atlas.base64)
    expect(bytes.length).toBe(count * 32 * 32)
    // Item 5's cell, row 3, column 4: the item's pixel (6, 8).
    expect(bytes[5 * 1024 + 3 * 32 + 4]).toBe(pixels[5 * 4096 + 6 * 64 + 8])
  })

  it('refuses a relative dataset path instead of resolving it against its working directory', async () => {
    const { ask } = makeEngine()
    await expect(ask('dataset.open', { path: '../../etc' })).rejects.toThrow(/absolute path/)
  })

  it('describes what it holds for a window that re-attaches, curves and maps included', async () => {
    const { ask, events } = makeEngine()
    expect((await ask<EngineState>('engine.state')).dataset).toBeNull()
    await ask('dataset.open', { path: small })
    await ask('train.start', { family: 'vae', epochs: 1, latentDim: 2 })
    for (let i = 0; i < 600 && !events.some((e) => e.name === 'model.metrics'); i++) await new Promise((r) => setTimeout(r, 100))
    for (let i = 0; i < 600 && (await ask<EngineState>('engine.state')).mapSpaces.length === 0; i++) await new Promise((r) => setTimeout(r, 100))
    const state = await ask<EngineState>('engine.state')
    expect(state.dataset?.itemCount).toBe(120)
    expect(state.model?.family).toBe('vae')
    expect(state.training).toBe('idle')
    expect(state.steps.length).toBeGreaterThan(0)
    expect(state.epochs).toHaveLength(1)
    expect(state.epochs[0].health.z.klPerDim).toHaveLength(2)
    expect(state.metrics?.knn5.z).toBeGreaterThan(0)
    expect(state.mapSpaces).toEqual(['z'])
  }, 300_000)

  it('reopens a run as it was left: stored latents reused (no encoding), its 2D map settings, its curves', async () => {
    const { ask, events } = makeEngine()
    await ask('dataset.open', { path: small })
    const started = await ask<{ runId: string }>('train.start', { family: 'vae', epochs: 2, latentDim: 2 })
    const ready = async () => {
      for (let i = 0; i < 600; i++) {
        const state = await ask<EngineState>('engine.state')
        if (state.status.phase === 'ready' && state.mapSpaces.length > 0) return state
        await new Promise((r) => setTimeout(r, 100))
      }
      throw new Error('the maps never became ready')
    }
    await ready()
    // A 2D map with other settings, made from the latents in memory (no encoding).
    const statuses = (): string[] => events.filter((e) => e.name === 'status').map((e) => (e.payload as { message: string }).message)
    const before = statuses().length
    await ask('maps.refresh', { projection: { nNeighbors: 8, minDist: 0.3, seed: 2, nComponents: 2 } })
    await ready()
    expect(
      statuses()
        .slice(before)
        .filter((m) => /encoding/.test(m))
    ).toEqual([])
    const runs = await ask<{ path: string }[]>('runs.list')
    const path = runs[0].path
    expect(path).toContain(started.runId)

    const reopened = makeEngine()
    await reopened.ask('run.open', { path })

    const state = await (async () => {
      for (let i = 0; i < 600; i++) {
        const s = await reopened.ask<EngineState>('engine.state')
        if (s.status.phase === 'ready' && s.mapSpaces.length > 0) return s
        await new Promise((r) => setTimeout(r, 100))
      }
      throw new Error('the reopened maps never became ready')
    })()
    const reopenedStatuses = reopened.events.filter((e) => e.name === 'status').map((e) => (e.payload as { message: string }).message)
    expect(reopenedStatuses.filter((m) => /encoding|UMAP|measuring/.test(m))).toEqual([])
    expect(state.projection).toEqual({ nNeighbors: 8, minDist: 0.3, seed: 2, nComponents: 2 })
    expect(state.epochs.map((e) => e.epoch)).toEqual([1, 2])
    expect(state.metrics?.heldOut.total).toBeGreaterThan(0)
  }, 300_000)

  it('renames and deletes only runs of its own runs folder, and not the open one', async () => {
    const { ask } = makeEngine()
    await ask('dataset.open', { path: small })
    await ask('train.start', { family: 'vae', epochs: 1, latentDim: 2 })
    for (let i = 0; i < 600 && (await ask<EngineState>('engine.state')).status.phase !== 'ready'; i++) await new Promise((r) => setTimeout(r, 100))
    const [run] = await ask<{ path: string; title: string | null }[]>('runs.list')
    expect((await ask<{ title: string | null }[]>('run.rename', { path: run.path, title: '  first try ' }))[0].title).toBe('first try')
    await expect(ask('run.rename', { path: small, title: 'x' })).rejects.toThrow(/is not one of the app's runs/)
    await expect(ask('run.delete', { path: join(run.path, '..', '..') })).rejects.toThrow(/is not one of the app's runs/)
    await expect(ask('run.delete', { path: run.path })).rejects.toThrow(/this run is open/)
  }, 300_000)
})
