// The contract's validation: what the main process and the engine accept from a renderer.
import { describe, expect, it } from 'vitest'
import {
  base64ToFloat32,
  base64ToInt32,
  ContractError,
  float32ToBase64,
  int32ToBase64,
  REQUEST_NAMES,
  validateRequest
} from '../../electron/common/contract'

const request = (name: string, args: unknown, id: unknown = 1) => ({ type: 'request', id, name, args })

describe('validateRequest', () => {
  it('accepts well-formed requests of every name', () => {
    expect(validateRequest(request('dataset.open', { path: '/data/shapes', size: 28 })).args).toEqual({ path: '/data/shapes', size: 28 })
    expect(validateRequest(request('dataset.open', { path: null })).name).toBe('dataset.open')
    expect(validateRequest(request('train.start', { family: 'cdvae', epochs: 3, learningRate: 0.001 })).name).toBe('train.start')
    expect(validateRequest(request('item.inspect', { index: 0 })).args).toEqual({ index: 0 })
    for (const name of REQUEST_NAMES) expect(() => validateRequest(request(name, undefined))).not.toThrow(/unknown request/)
  })

  it.each([
    [request('shell.exec', {}), /unknown request "shell.exec"/],
    [request('dataset.open', { path: 42 }), /dataset.open.path must be a non-empty string/],
    [request('dataset.open', { path: 'a\0b' }), /non-empty string/],
    [request('dataset.open', { path: 'x'.repeat(5000) }), /at most 4096/],
    [request('dataset.open', { path: '/x', extra: true }), /unknown field "extra"/],
    [request('train.start', { family: 'gan' }), /family must be one of vae, srvae, cdvae/],
    [request('train.start', { family: 'vae', epochs: 1.5 }), /epochs must be a whole number/],
    [request('train.start', { family: 'vae', learningRate: Number.NaN }), /learningRate must be a number/],
    [request('item.inspect', { index: -1 }), /index must be a whole number from 0/],
    [request('engine.info', {}, 'one'), /id must be a whole number/],
    [{ type: 'event', name: 'status' }, /not a request/],
    ['a string', /must be an object/]
  ])('rejects %j', (message, reason) => {
    expect(() => validateRequest(message)).toThrow(ContractError)
    expect(() => validateRequest(message)).toThrow(reason)
  })
})

describe('binary payloads', () => {
  it('round-trip float32 and int32 arrays through base64', () => {
    const floats = new Float32Array([0, -1.5, 3.25, 1e-7, Number.MAX_VALUE])
    expect(Array.from(base64ToFloat32(float32ToBase64(floats)))).toEqual(Array.from(floats))
    const ints = new Int32Array([-1, 0, 7, 2 ** 31 - 1])
    expect(Array.from(base64ToInt32(int32ToBase64(ints)))).toEqual(Array.from(ints))
    // A view into a larger buffer encodes only its own bytes.
    const view = new Float32Array([9, 8, 7, 6]).subarray(1, 3)
    expect(Array.from(base64ToFloat32(float32ToBase64(view)))).toEqual([8, 7])
  })
})
