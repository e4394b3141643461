// A uniform grid over the map's points in their own 3D coordinates, for picking. It does not
// depend on the camera, so orbiting, panning and zooming never invalidate it (a screen-space index
// has to be rebuilt after every camera move, which at 200k points costs tens of milliseconds on the
// first hover). A pick walks the cells along the view ray, widened into the cone of world points
// that can land within the pick radius on screen, and the caller tests only those points.

/** About this many points per cell on average (fewer cells = fewer visits, more points per visit). */
const POINTS_PER_CELL = 2
const MAX_CELLS_PER_AXIS = 128

export interface Ray {
  origin: [number, number, number]
  /** Unit length. */
  direction: [number, number, number]
}

export class PickGrid {
  private readonly min = [0, 0, 0]
  private readonly cellSize = [1, 1, 1]
  private readonly cells = [1, 1, 1]
  private cellStart = new Int32Array(2)
  private cellItems = new Int32Array(0)
  /** Per cell: the query that last visited it (each query visits a cell once). */
  private visitedBy = new Int32Array(1)
  private query = 0

  /** Buckets `count` points (positions count*3) by cell: O(n), two passes (counting sort). */
  constructor(positions: Float32Array, count = positions.length / 3) {
    const max = [-Infinity, -Infinity, -Infinity]
    const min = [Infinity, Infinity, Infinity]
    for (let i = 0; i < count; i++) {
      for (let a = 0; a < 3; a++) {
        const v = positions[i * 3 + a]
        if (v < min[a]) min[a] = v
        if (v > max[a]) max[a] = v
      }
    }
    if (count === 0) return
    const extent = [0, 1, 2].map((a) => max[a] - min[a])
    // Cubic cells sized so that the box holds about count / POINTS_PER_CELL of them; a flat (2D)
    // map has one layer in z.
    const largest = Math.max(...extent, 1e-9)
    const present = extent.filter((e) => e > largest * 1e-6)
    const volume = present.reduce((p, e) => p * e, 1)
    let side = Math.pow(volume / Math.max(1, count / POINTS_PER_CELL), 1 / Math.max(1, present.length))
    side = Math.max(side, largest / MAX_CELLS_PER_AXIS)
    for (let a = 0; a < 3; a++) {
      this.min[a] = min[a]
      this.cells[a] = Math.max(1, Math.min(MAX_CELLS_PER_AXIS, Math.ceil(extent[a] / side) || 1))
      this.cellSize[a] = Math.max(extent[a] / this.cells[a], side)
    }
    const total = this.cells[0] * this.cells[1] * this.cells[2]
    const cellOf = new Int32Array(count)
    const start = new Int32Array(total + 1)
    for (let i = 0; i < count; i++) {
      const c = this.cellIndex(positions[i * 3], positions[i * 3 + 1], positions[i * 3 + 2])
      cellOf[i] = c
      start[c + 1]++
    }
    for (let c = 0; c < total; c++) start[c + 1] += start[c]
    const fill = start.slice(0, total)
    const items = new Int32Array(count)
    for (let i = 0; i < count; i++) items[fill[cellOf[i]]++] = i
    this.cellStart = start
    this.cellItems = items
    this.visitedBy = new Int32Array(total)
  }

  private axisCell(a: number, v: number): number {
    const c = Math.floor((v - this.min[a]) / this.cellSize[a])
    // !(c >= 0) also catches NaN (a point with a NaN coordinate goes to the first cell, consistently).
    return !(c >= 0) ? 0 : c >= this.cells[a] ? this.cells[a] - 1 : c
  }

  private cellIndex(x: number, y: number, z: number): number {
    return (this.axisCell(2, z) * this.cells[1] + this.axisCell(1, y)) * this.cells[0] + this.axisCell(0, x)
  }

  /**
   * Calls `visit(i)` for every point that may lie within distance `radiusAt(t)` of the ray at
   * parameter t (t >= tNear), and for others in the same cells: the caller decides. Each point is
   * visited at most once. `radiusAt` must be non-decreasing in t (a perspective cone, or a constant
   * for an orthographic view).
   */
  forEachNear(ray: Ray, radiusAt: (t: number) => number, tNear: number, visit: (i: number) => void): void {
    if (this.cellItems.length === 0) return
    const o = ray.origin
    const d = ray.direction
    const [ox, oy, oz] = o
    const [dx, dy, dz] = d
    const size = this.cellSize
    const max = [0, 1, 2].map((a) => this.min[a] + this.cells[a] * size[a])
    // The ray's span through the grid's box grown by the widest radius the cone can reach there.
    let t0 = tNear
    let t1 = Infinity
    const far = this.farthestT(o, d, max)
    const grow = radiusAt(Math.max(far, tNear))
    for (let a = 0; a < 3; a++) {
      const lo = this.min[a] - grow
      const hi = max[a] + grow
      if (Math.abs(d[a]) < 1e-12) {
        if (o[a] < lo || o[a] > hi) return
        continue
      }
      let ta = (lo - o[a]) / d[a]
      let tb = (hi - o[a]) / d[a]
      if (ta > tb) [ta, tb] = [tb, ta]
      t0 = Math.max(t0, ta)
      t1 = Math.min(t1, tb)
    }
    if (!(t0 <= t1)) return
    this.query = (this.query + 1) | 0
    if (this.query === 0) {
      this.visitedBy.fill(0)
      this.query = 1
    }
    const stamp = this.query
    // Samples along the ray, each with a box of half-width radiusAt(t) + (distance from the
    // previous sample): a point within radiusAt(t') of the ray at t' in (previous, t] is within
    // that of the sample at t (radiusAt does not decrease), so the boxes cover the whole cone.
    // Steps of half a cell, or of the cone's radius where it is wider (zoomed far out), so that a
    // box is not rescanned cell by cell a hundred times.
    const minStep = Math.min(size[0], size[1], size[2]) / 2
    const [nx, ny] = this.cells
    let previous = t0
    for (let t = t0; ; ) {
      const tc = Math.min(t, t1)
      const r = radiusAt(tc) + (tc - previous)
      const px = ox + dx * tc
      const py = oy + dy * tc
      const pz = oz + dz * tc
      const x0 = this.axisCell(0, px - r)
      const x1 = this.axisCell(0, px + r)
      const y0 = this.axisCell(1, py - r)
      const y1 = this.axisCell(1, py + r)
      const z0 = this.axisCell(2, pz - r)
      const z1 = this.axisCell(2, pz + r)
      for (let cz = z0; cz <= z1; cz++) {
        for (let cy = y0; cy <= y1; cy++) {
          const row = (cz * ny + cy) * nx
          for (let cx = x0; cx <= x1; cx++) {
            const cell = row + cx
            if (this.visitedBy[cell] === stamp) continue
            this.visitedBy[cell] = stamp
            for (let k = this.cellStart[cell]; k < this.cellStart[cell + 1]; k++) visit(this.cellItems[k])
          }
        }
      }
      if (tc >= t1) break
      previous = tc
      t = tc + Math.max(minStep, radiusAt(tc))
    }
  }

  /** An upper bound on the t at which the ray leaves the grid's box (the L1 distance to its far corner). */
  private farthestT(o: readonly number[], d: readonly number[], max: number[]): number {
    let t = 0
    for (let a = 0; a < 3; a++) {
      const farSide = d[a] >= 0 ? max[a] : this.min[a]
      t += Math.abs(farSide - o[a])
    }
    return t
  }
}

/** A perspective view as a pick needs it. */
export interface PickView {
  /** projection * view, column-major (three.js Matrix4.elements). */
  viewProjection: ArrayLike<number>
  width: number
  height: number
  /** The ray from the camera through the picked pixel. */
  ray: Ray
  /** tan(vertical field of view / 2). */
  tanHalfFov: number
  near: number
}

/**
 * The visible point nearest to (x, y) on screen (CSS pixels) within `radius`, or null; ties go to
 * the lower index, so the answer does not depend on the grid's order. Only points in the cone
 * around the ray that can project within `radius` are tested.
 */
export function nearestOnScreen(grid: PickGrid, positions: Float32Array, visible: Float32Array, view: PickView,
  x: number, y: number, radius: number): number | null {
  const e = view.viewProjection
  const { width, height } = view
  // A pixel subtends at most 2 tan(fov/2) / height radians (on the axis; less off it), so points
  // within `radius` px lie within t * tanCone of the ray; 1.25 covers rounding at the rim.
  const tanCone = (1.25 * radius * 2 * view.tanHalfFov) / height
  let best: number | null = null
  let bestDistance = radius * radius
  grid.forEachNear(view.ray, (t) => t * tanCone, view.near, (i) => {
    if (visible[i] < 0.5) return
    const px = positions[i * 3]
    const py = positions[i * 3 + 1]
    const pz = positions[i * 3 + 2]
    const w = e[3] * px + e[7] * py + e[11] * pz + e[15]
    if (w <= 0) return
    const sx = ((e[0] * px + e[4] * py + e[8] * pz + e[12]) / w + 1) * 0.5 * width
    const sy = (1 - (e[1] * px + e[5] * py + e[9] * pz + e[13]) / w) * 0.5 * height
    const dx = sx - x
    const dy = sy - y
    const d = dx * dx + dy * dy
    if (d < bestDistance || (d === bestDistance && best !== null && i < best)) {
      bestDistance = d
      best = i
    }
  })
  return best
}
