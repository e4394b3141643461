// Lasso selection on a map: which drawn points lie inside a closed outline drawn on the screen.
// Pure functions over screen positions, so that they are tested without WebGL.

export interface ScreenPoint {
  x: number
  y: number
}

/** Whether (x, y) is inside the closed polygon (even-odd rule: a ray to the right crosses an odd number of edges). */
export function insidePolygon(x: number, y: number, polygon: readonly ScreenPoint[]): boolean {
  let inside = false
  for (let i = 0, j = polygon.length - 1; i < polygon.length; j = i++) {
    const a = polygon[i]
    const b = polygon[j]
    if (a.y > y !== b.y > y && x < ((b.x - a.x) * (y - a.y)) / (b.y - a.y) + a.x) inside = !inside
  }
  return inside
}

/**
 * The items whose screen position (`screen`: n*2 CSS pixels, NaN when behind the camera) lies inside
 * `polygon`, among those with `visible[i]` set (hidden classes are not selected), in item order.
 * Points outside the polygon's bounding box are rejected before the exact test.
 */
export function itemsInPolygon(screen: Float32Array, visible: Float32Array, polygon: readonly ScreenPoint[]): Int32Array {
  if (polygon.length < 3) return new Int32Array(0)
  const xs = polygon.map((p) => p.x)
  const ys = polygon.map((p) => p.y)
  const [left, right, top, bottom] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)]
  const out: number[] = []
  for (let i = 0; i < visible.length; i++) {
    if (!visible[i]) continue
    const x = screen[i * 2]
    const y = screen[i * 2 + 1]
    // NaN fails every comparison: points behind the camera are never inside.
    if (!(x >= left && x <= right && y >= top && y <= bottom)) continue
    if (insidePolygon(x, y, polygon)) out.push(i)
  }
  return Int32Array.from(out)
}
