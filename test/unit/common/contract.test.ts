// The contract's validation: what the main process and the engine accept from a renderer.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  base64ToFloat32,
  base64ToInt32,
  ContractError,
  describeRequestError,
  float32ToBase64,
  int32ToBase64,
  REQUEST_NAMES,
  requestIdOf,
  validateRequest
} from '../../../electron/common/contract'

const request = (name: string, args: unknown, id: unknown = 1) => ({ type: 'request', id, name, args })

describe('validateRequest', () => {
  it('accepts well-formed requests of every name', () => {
    expect(validateRequest(request('dataset.open', { path: '/data/shapes', size: 28 })).args).toEqual({ path: '/data/shapes', size: 28 })
    expect(validateRequest(request('dataset.open', { path: null })).name).toBe('dataset.open')
    expect(validateRequest(request('train.start', { family: 'cdvae', epochs: 3, learningRate: 0.001 })).name).toBe('train.start')
    expect(validateRequest(request('train.start', { family: 'cdvae', classPriorRadius: 6.5 })).name).toBe('train.start')
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
    ['a string', /must be an object/],
    [null, /must be an object/],
    // Keys Object.prototype has are not fields.
    [request('dataset.open', { path: '/x', toString: 1 }), /unknown field "toString"/],
    [JSON.parse('{"type":"request","id":1,"name":"dataset.open","args":{"path":"/x","__proto__":{"a":1}}}'), /unknown field "__proto__"/],
    [request('engine.info', {}, -1), /id must be a whole number/],
    // Numbers are numbers: not "3", not [3].
    [request('maps.refresh', { projection: { nNeighbors: 15, minDist: 0.1, seed: 0, nComponents: '3' } }), /nComponents must be one of 2, 3/],
    [request('maps.refresh', { projection: { nNeighbors: 15, minDist: 0.1, seed: 0, nComponents: [3] } }), /nComponents must be one of 2, 3/],
    [request('train.start', { family: 'cdvae', objective: { klWeights: { z_l: -1 } } }), /klWeights.z_l must be a number from 0 to 100/],
    [request('train.start', { family: 'cdvae', objective: { klWeights: [4] } }), /klWeights must be an object/],
    [request('train.start', { family: 'cdvae', objective: { warmup: 3 } }), /unknown field "warmup"/],
    [request('train.start', { family: 'cdvae', classPriorRadius: 0 }), /classPriorRadius must be a number from 0.5 to 20/]
  ])('rejects %j', (message, reason) => {
    expect(() => validateRequest(message)).toThrow(ContractError)
    expect(() => validateRequest(message)).toThrow(reason)
  })
})

describe('validateRequest under fuzzing', () => {
  const names = fc.oneof(fc.constantFrom(...REQUEST_NAMES), fc.string({ maxLength: 50 }), fc.constantFrom('__proto__', 'constructor', 'toString'))
  const message = fc.oneof(
    fc.jsonValue(),
    fc.record({
      type: fc.constantFrom('request', 'event', 'response'),
      id: fc.oneof(fc.integer(), fc.double(), fc.string()),
      name: names,
      args: fc.jsonValue()
    }),
    fc.record({
      type: fc.constant('request'),
      id: fc.nat(),
      name: fc.constantFrom(...REQUEST_NAMES),
      args: fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue())
    })
  )

  it('either accepts a message or throws a ContractError whose text stays short', () => {
    fc.assert(
      fc.property(message, (value) => {
        try {
          const accepted = validateRequest(value)
          // What passes is a request of a known name with a whole-number id.
          return REQUEST_NAMES.includes(accepted.name) && Number.isInteger(accepted.id)
        } catch (error) {
          return error instanceof ContractError && error.message.length < 300
        }
      }),
      { numRuns: 3000 }
    )
  })

  it('never echoes a long or deep value back whole', () => {
    const deep = JSON.parse(`${'['.repeat(50_000)}${']'.repeat(50_000)}`)
    expect(() => validateRequest({ type: 'request', id: 1, name: deep })).toThrow(/unknown request an array/)
    expect(() => validateRequest({ type: 'request', id: 1, name: 'x'.repeat(900_000) })).toThrow(/^unknown request "x{40}…"$/)
    expect(requestIdOf(null)).toBe(-1)
    expect(requestIdOf({ id: 7 })).toBe(7)
    expect(requestIdOf({ id: 1.5 })).toBe(-1)
    expect(describeRequestError(new RangeError('Maximum call stack size exceeded'))).toBe('the request is nested too deeply or too large')
    expect(describeRequestError(new TypeError("Cannot read properties of null (reading 'id')"))).not.toContain('properties of null')
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
