// The map's rendering benchmark (bench.html?n=60000): the real LatentScatter with n clustered
// points, rotated for a few seconds to measure frames per second, then timed picks. It holds no
// token and reaches no engine. bench/render.ts drives it in Chromium and reads window.benchResult.
import { LatentScatter } from '../scene/scatter'
import { classPalette, colourToRgb } from '../scene/palette'

interface BenchResult {
  n: number
  fps: number
  /** Points drawn per frame while the camera moved (all, or the software-GL subset). */
  drawnWhileMoving: number
  frames: number
  seconds: number
  /**
   * First pick right after new points arrived (it builds the 3D pick grid, which otherwise happens
   * 200 ms after the last new points), after the camera moved, and on a still camera.
   */
  pickAfterNewPointsMs: number
  pickAfterMoveMs: number
  pickStillMedianMs: number
  pickStillP95Ms: number
  renderer: string
}

declare global {
  interface Window {
    benchResult?: BenchResult
  }
}

function clusteredPoints(n: number, classes: number): { positions: Float32Array; colours: Float32Array } {
  let seed = 7
  const random = () => (seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32
  const gaussian = () => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random())
  const centres = Array.from({ length: classes }, () => [random() * 1.6 - 0.8, random() * 1.6 - 0.8, random() * 1.6 - 0.8])
  const palette = classPalette(classes).map(colourToRgb)
  const positions = new Float32Array(n * 3)
  const colours = new Float32Array(n * 3)
  for (let i = 0; i < n; i++) {
    const c = i % classes
    for (let d = 0; d < 3; d++) {
      positions[i * 3 + d] = centres[c][d] + gaussian() * 0.12
      colours[i * 3 + d] = palette[c][d]
    }
  }
  return { positions, colours }
}

const nextFrame = () => new Promise<number>((resolve) => requestAnimationFrame(resolve))

async function run(): Promise<void> {
  const params = new URLSearchParams(location.search)
  const n = Number(params.get('n') ?? 60000)
  const seconds = Number(params.get('seconds') ?? 4)
  const container = document.getElementById('map') as HTMLElement
  const scatter = new LatentScatter(container, {
    background: '#15171c',
    preserveDrawingBuffer: params.get('preserve') !== '0',
    ...(params.has('size') ? { pointSize: Number(params.get('size')) } : {}),
    // motion=all: every point at full resolution on every frame while orbiting, even on software GL.
    ...(params.get('motion') === 'all' ? { motionPoints: Infinity, motionResolution: 1 } : {}),
    ...(params.has('resolution') ? { motionResolution: Number(params.get('resolution')) } : {})
  })
  ;(window as unknown as { benchScatter: LatentScatter }).benchScatter = scatter
  const { positions, colours } = clusteredPoints(n, 10)
  scatter.setPoints(positions, colours, true)
  const width = container.clientWidth
  const height = container.clientHeight
  const arrived = performance.now()
  scatter.pick(width / 2, height / 2)
  const pickAfterNewPointsMs = performance.now() - arrived
  for (let i = 0; i < 10; i++) await nextFrame()

  // Rotate the camera every frame, as an orbit drag does, and count frames drawn.
  const camera = (scatter as unknown as { camera: { position: { x: number; z: number } } }).camera
  let frames = 0
  let drawnWhileMoving = 0
  const started = performance.now()
  while (performance.now() - started < seconds * 1000) {
    const angle = (performance.now() - started) / 1000
    camera.position.x = 3.2 * Math.sin(angle)
    camera.position.z = 3.2 * Math.cos(angle)
    // The controls' change event requests one render for the next frame, as a drag does.
    ;(scatter as unknown as { controls: { update(): void } }).controls.update()
    await nextFrame()
    frames++
    drawnWhileMoving = scatter.drawnPoints
  }
  const elapsed = (performance.now() - started) / 1000

  scatter.resetView()
  const moved = performance.now()
  scatter.pick(width / 2, height / 2)
  const pickAfterMoveMs = performance.now() - moved
  const times: number[] = []
  for (let i = 0; i < 200; i++) {
    const x = ((i * 37) % 100) / 100
    const y = ((i * 61) % 100) / 100
    const t = performance.now()
    scatter.pick(x * width, y * height)
    times.push(performance.now() - t)
  }
  times.sort((a, b) => a - b)
  const gl = (scatter.canvas.getContext('webgl2') ?? scatter.canvas.getContext('webgl')) as WebGLRenderingContext | null
  const info = gl?.getExtension('WEBGL_debug_renderer_info')
  window.benchResult = {
    n,
    fps: frames / elapsed,
    drawnWhileMoving,
    frames,
    seconds: elapsed,
    pickAfterNewPointsMs,
    pickAfterMoveMs,
    pickStillMedianMs: times[Math.floor(times.length / 2)],
    pickStillP95Ms: times[Math.floor(times.length * 0.95)],
    renderer: info && gl ? String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL)) : 'unknown'
  }
}

void run()
