// Picking on the map: the 3D grid's cone walk must find exactly the point a scan of every point's
// screen position finds, from any camera, on 3D and flat maps, with hidden points skipped.
import { describe, expect, it } from 'vitest'
import * as THREE from 'three'
import { nearestOnScreen, PickGrid, type PickView } from '../../../renderer/src/scene/pick-grid'

function clustered(n: number, flat: boolean, seed = 3): Float32Array {
  let s = seed
  const random = () => (s = (s * 1664525 + 1013904223) >>> 0) / 2 ** 32
  const gaussian = () => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random())
  const centres = Array.from({ length: 8 }, () => [random() * 1.6 - 0.8, random() * 1.6 - 0.8, flat ? 0 : random() * 1.6 - 0.8])
  const out = new Float32Array(n * 3)
  for (let i = 0; i < n; i++) {
    const c = centres[i % 8]
    out[i * 3] = c[0] + gaussian() * 0.15
    out[i * 3 + 1] = c[1] + gaussian() * 0.15
    out[i * 3 + 2] = flat ? 0 : c[2] + gaussian() * 0.15
  }
  return out
}

function view(camera: THREE.PerspectiveCamera, width: number, height: number, x: number, y: number): PickView {
  camera.updateMatrixWorld()
  const raycaster = new THREE.Raycaster()
  raycaster.setFromCamera(new THREE.Vector2((x / width) * 2 - 1, 1 - (y / height) * 2), camera)
  const { origin, direction } = raycaster.ray
  return {
    viewProjection: new THREE.Matrix4().multiplyMatrices(camera.projectionMatrix, camera.matrixWorldInverse).elements,
    width,
    height,
    ray: { origin: [origin.x, origin.y, origin.z], direction: [direction.x, direction.y, direction.z] },
    tanHalfFov: Math.tan(THREE.MathUtils.degToRad(camera.fov / 2)),
    near: camera.near
  }
}

/** The reference: every point projected, the nearest within radius, ties to the lower index. */
function bruteForce(positions: Float32Array, visible: Float32Array, v: PickView, x: number, y: number, radius: number): number | null {
  const e = v.viewProjection
  let best: number | null = null
  let bestDistance = radius * radius
  for (let i = 0; i < positions.length / 3; i++) {
    if (visible[i] < 0.5) continue
    const [px, py, pz] = [positions[i * 3], positions[i * 3 + 1], positions[i * 3 + 2]]
    const w = e[3] * px + e[7] * py + e[11] * pz + e[15]
    if (w <= 0) continue
    const sx = ((e[0] * px + e[4] * py + e[8] * pz + e[12]) / w + 1) * 0.5 * v.width
    const sy = (1 - (e[1] * px + e[5] * py + e[9] * pz + e[13]) / w) * 0.5 * v.height
    const d = (sx - x) ** 2 + (sy - y) ** 2
    if (d < bestDistance || (d === bestDistance && best !== null && i < best)) {
      bestDistance = d
      best = i
    }
  }
  return best
}

describe('picking through the 3D grid', () => {
  const width = 900
  const height = 600
  const cameras: [string, [number, number, number], [number, number, number]][] = [
    ['front', [0, 0, 3.2], [0, 0, 0]],
    ['oblique', [2.1, 1.4, -1.9], [0.1, -0.1, 0]],
    ['zoomed in, inside the cloud', [0.3, 0.2, 0.35], [0.2, 0.1, 0]],
    ['far away', [0, 0, 14], [0, 0, 0]],
    // The whole map in a few dozen pixels: the pick radius spans several grid cells.
    ['very far away', [3, 2, 40], [0, 0, 0]]
  ]
  for (const flat of [false, true]) {
    const positions = clustered(20_000, flat)
    const visible = new Float32Array(20_000).fill(1)
    for (let i = 0; i < visible.length; i += 7) visible[i] = 0
    const grid = new PickGrid(positions)
    for (const [name, eye, target] of cameras) {
      it(`finds the same point as a full scan: ${flat ? 'flat' : '3D'} map, ${name} camera`, () => {
        const camera = new THREE.PerspectiveCamera(50, width / height, 0.01, 100)
        camera.position.set(...eye)
        camera.lookAt(new THREE.Vector3(...target))
        let found = 0
        const e = view(camera, width, height, 0, 0).viewProjection
        for (let k = 0; k < 300; k++) {
          // Half the picks anywhere on the canvas, half a few pixels from a point (where they hit).
          let x = (((k * 37) % 101) / 100) * width
          let y = (((k * 61) % 103) / 102) * height
          if (k % 2 === 1) {
            const i = (k * 7919) % 20_000
            const p = new THREE.Vector4(positions[i * 3], positions[i * 3 + 1], positions[i * 3 + 2], 1).applyMatrix4(new THREE.Matrix4().fromArray(e))
            if (p.w > 0) {
              x = (p.x / p.w + 1) * 0.5 * width + ((k % 15) - 7)
              y = (1 - p.y / p.w) * 0.5 * height + ((k % 13) - 6)
            }
          }
          for (const radius of [3, 8]) {
            const v = view(camera, width, height, x, y)
            const expected = bruteForce(positions, visible, v, x, y, radius)
            expect(nearestOnScreen(grid, positions, visible, v, x, y, radius)).toBe(expected)
            if (expected !== null) found++
          }
        }
        // The comparison means something only if many picks hit points.
        expect(found).toBeGreaterThan(150)
      })
    }
  }

  it('tests few points on a pick through the core of a dense cluster (cells follow the density)', () => {
    // 200k points in 8 tight clusters, as a UMAP map is: the bounding box is mostly empty.
    const n = 200_000
    const positions = clustered(n, false, 11)
    const grid = new PickGrid(positions)
    // The camera looks straight through the densest spot: the centre of the first cluster.
    const centre: [number, number, number] = [0, 0, 0]
    for (let i = 0; i < n; i += 8) for (let a = 0; a < 3; a++) centre[a] += positions[i * 3 + a] / (n / 8)
    const camera = new THREE.PerspectiveCamera(50, width / height, 0.01, 100)
    camera.position.set(centre[0], centre[1], 3.2)
    camera.lookAt(new THREE.Vector3(...centre))
    const v = view(camera, width, height, width / 2, height / 2)
    const tanCone = (1.25 * 8 * 2 * v.tanHalfFov) / height
    let tested = 0
    let inCone = 0
    grid.forEachNear(
      v.ray,
      (t) => t * tanCone,
      v.near,
      (i) => {
        tested++
        const [dx, dy] = [positions[i * 3] - centre[0], positions[i * 3 + 1] - centre[1]]
        if (Math.hypot(dx, dy) < (3.2 - positions[i * 3 + 2]) * tanCone) inCone++
      }
    )
    // Not many more points are tested than can land within 8 px: 2.2x here. Cells sized for the
    // whole box, walked by boxes around samples of the ray, tested 7.2x (13,710 points).
    expect(inCone).toBeGreaterThan(200)
    expect(tested).toBeLessThan(3 * inCone)
  })

  it('never returns a hidden point, and returns null over empty space', () => {
    const positions = new Float32Array([0, 0, 0, 0.001, 0, 0])
    const grid = new PickGrid(positions)
    const camera = new THREE.PerspectiveCamera(50, width / height, 0.01, 100)
    camera.position.set(0, 0, 2)
    camera.lookAt(0, 0, 0)
    const centre = view(camera, width, height, width / 2, height / 2)
    expect(nearestOnScreen(grid, positions, new Float32Array([1, 1]), centre, width / 2, height / 2, 8)).toBe(0)
    expect(nearestOnScreen(grid, positions, new Float32Array([0, 1]), centre, width / 2, height / 2, 8)).toBe(1)
    expect(nearestOnScreen(grid, positions, new Float32Array([0, 0]), centre, width / 2, height / 2, 8)).toBeNull()
    const corner = view(camera, width, height, 10, 10)
    expect(nearestOnScreen(grid, positions, new Float32Array([1, 1]), corner, 10, 10, 8)).toBeNull()
  })
})
