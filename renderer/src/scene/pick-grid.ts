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
    const dimensions = Math.max(1, present.length)
    let side = Math.pow(volume / Math.max(1, count / POINTS_PER_CELL), 1 / dimensions)
    const cellOf = new Int32Array(count)
    let start = new Int32Array(0)
    // UMAP maps are clusters with empty space between them: cells sized for the whole box would hold
    // hundreds of points inside a cluster, and a pick through a cluster's core would test thousands
    // (5 ms at 200k points). So the cells shrink until those that hold points hold about
    // POINTS_PER_CELL on average (at most a few passes; the axis cap bounds the memory).
    for (let a = 0; a < 3; a++) this.min[a] = min[a]
    for (let pass = 0; ; pass++) {
      side = Math.max(side, largest / MAX_CELLS_PER_AXIS)
      for (let a = 0; a < 3; a++) {
        this.cells[a] = Math.max(1, Math.min(MAX_CELLS_PER_AXIS, Math.ceil(extent[a] / side) || 1))
        this.cellSize[a] = Math.max(extent[a] / this.cells[a], side)
      }
      const total = this.cells[0] * this.cells[1] * this.cells[2]
      start = new Int32Array(total + 1)
      let occupied = 0
      for (let i = 0; i < count; i++) {
        const c = this.cellIndex(positions[i * 3], positions[i * 3 + 1], positions[i * 3 + 2])
        cellOf[i] = c
        if (start[c + 1]++ === 0) occupied++
      }
      const perOccupiedCell = count / occupied
      if (pass === 3 || perOccupiedCell <= 2 * POINTS_PER_CELL || side <= largest / MAX_CELLS_PER_AXIS) break
      side *= Math.pow(POINTS_PER_CELL / perOccupiedCell, 1 / dimensions)
    }
    const total = this.cells[0] * this.cells[1] * this.cells[2]
    for (let c = 0; c < total; c++) start[c + 1] += start[c]
    const fill = start.slice(0, total)
    const items = new Int32Array(count)
    for (let i = 0; i < count; i++) items[fill[cellOf[i]]++] = i
    this.cellStart = start
    this.cellItems = items
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
    // The cells are walked slab by slab across the axis the ray runs most along (m), each cell at
    // most once. A point within radiusAt(t) of the ray at t lies within R of it along every axis
    // (R = the radius at the far end of the span), so for a slab the ray's parameter range is
    // where its m coordinate is within R of the slab, and the slab's candidate cells are the
    // rectangle the ray crosses over that range, grown by the radius there. (Sampling the ray and
    // scanning a box of cells around each sample, as before, checked each cell up to ~20 times.)
    const m = Math.abs(dx) >= Math.abs(dy) && Math.abs(dx) >= Math.abs(dz) ? 0 : Math.abs(dy) >= Math.abs(dz) ? 1 : 2
    const p = m === 0 ? 1 : 0
    const q = m === 2 ? 1 : 2
    const stride = [1, this.cells[0], this.cells[0] * this.cells[1]]
    const widest = radiusAt(t1)
    const dm = d[m]
    const mNear = o[m] + dm * t0
    const mFar = o[m] + dm * t1
    const firstSlab = this.axisCell(m, Math.min(mNear, mFar) - widest)
    const lastSlab = this.axisCell(m, Math.max(mNear, mFar) + widest)
    for (let slab = firstSlab; slab <= lastSlab; slab++) {
      const lo = this.min[m] + slab * size[m]
      let tA = (lo - widest - o[m]) / dm
      let tB = (lo + size[m] + widest - o[m]) / dm
      if (tA > tB) [tA, tB] = [tB, tA]
      tA = Math.max(tA, t0)
      tB = Math.min(tB, t1)
      if (!(tA <= tB)) continue
      const r = radiusAt(tB)
      const pNear = o[p] + d[p] * tA
      const pFar = o[p] + d[p] * tB
      const qNear = o[q] + d[q] * tA
      const qFar = o[q] + d[q] * tB
      const p0 = this.axisCell(p, Math.min(pNear, pFar) - r)
      const p1 = this.axisCell(p, Math.max(pNear, pFar) + r)
      const q0 = this.axisCell(q, Math.min(qNear, qFar) - r)
      const q1 = this.axisCell(q, Math.max(qNear, qFar) + r)
      for (let cq = q0; cq <= q1; cq++) {
        const row = slab * stride[m] + cq * stride[q]
        for (let cp = p0; cp <= p1; cp++) {
          const cell = row + cp * stride[p]
          for (let k = this.cellStart[cell]; k < this.cellStart[cell + 1]; k++) visit(this.cellItems[k])
        }
      }
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
export function nearestOnScreen(
  grid: PickGrid,
  positions: Float32Array,
  visible: Float32Array,
  view: PickView,
  x: number,
  y: number,
  radius: number
): number | null {
  const e = view.viewProjection
  const { width, height } = view
  // A pixel subtends at most 2 tan(fov/2) / height radians (on the axis; less off it), so points
  // within `radius` px lie within t * tanCone of the ray; 1.25 covers rounding at the rim.
  const tanCone = (1.25 * radius * 2 * view.tanHalfFov) / height
  let best: number | null = null
  let bestDistance = radius * radius
  grid.forEachNear(
    view.ray,
    (t) => t * tanCone,
    view.near,
    (i) => {
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
    }
  )
  return best
}
