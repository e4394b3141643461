// Lasso selection (renderer/src/scene/lasso.ts): the even-odd rule against shapes whose inside is
// known, hidden and behind-the-camera points left out, item order kept.
import { describe, expect, it } from 'vitest'
import { insidePolygon, itemsInPolygon } from '../../../renderer/src/scene/lasso'

const square = [
  { x: 0, y: 0 },
  { x: 10, y: 0 },
  { x: 10, y: 10 },
  { x: 0, y: 10 }
]
// A "U": the notch between its arms (x 4..6, y 0..8) is outside although inside the bounding box.
const u = [
  { x: 0, y: 0 },
  { x: 4, y: 0 },
  { x: 4, y: 8 },
  { x: 6, y: 8 },
  { x: 6, y: 0 },
  { x: 10, y: 0 },
  { x: 10, y: 10 },
  { x: 0, y: 10 }
]

describe('insidePolygon', () => {
  it('tells inside from outside for a square and for a concave outline', () => {
    expect(insidePolygon(5, 5, square)).toBe(true)
    expect(insidePolygon(11, 5, square)).toBe(false)
    expect(insidePolygon(-0.5, 5, square)).toBe(false)
    expect(insidePolygon(2, 4, u)).toBe(true)
    expect(insidePolygon(5, 4, u)).toBe(false)
    expect(insidePolygon(5, 9, u)).toBe(true)
  })

  it('agrees with the area: a grid of points counts the inscribed 64-gon of the unit circle at its area', () => {
    const circle = Array.from({ length: 64 }, (_, k) => ({ x: Math.cos((2 * Math.PI * k) / 64), y: Math.sin((2 * Math.PI * k) / 64) }))
    let inside = 0
    const n = 200 * 200
    for (let i = 0; i < 200; i++) for (let j = 0; j < 200; j++) if (insidePolygon(-1 + (i + 0.5) / 100, -1 + (j + 0.5) / 100, circle)) inside++
    // The 64-gon's area: 32 sin(2 pi / 64) = 3.1365; the grid counts it within 0.5%.
    expect((inside / n) * 4).toBeCloseTo(32 * Math.sin((2 * Math.PI) / 64), 2)
  })
})

describe('itemsInPolygon', () => {
  it('returns the visible items inside, in item order, and never a point behind the camera', () => {
    const screen = Float32Array.from([5, 9, 2, 4, 5, 4, NaN, NaN, 9, 9, 20, 20])
    const visible = Float32Array.from([1, 1, 1, 1, 0, 1])
    expect(Array.from(itemsInPolygon(screen, visible, u))).toEqual([0, 1])
    expect(Array.from(itemsInPolygon(screen, Float32Array.from([1, 1, 1, 1, 1, 1]), square))).toEqual([0, 1, 2, 4])
    expect(itemsInPolygon(screen, visible, square.slice(0, 2))).toHaveLength(0)
  })
})
