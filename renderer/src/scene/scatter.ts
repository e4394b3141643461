// A 3D scatter plot of points with colours, in the habits of 3D viewers: left-drag orbits,
// right-drag pans, the wheel zooms, double-click focuses a point, R resets the view. It knows
// points and colours only (not datasets or models), like the Embedding Projector's scatter plot.
// Renders on demand (after a change or while the camera moves), not in a busy loop.
import * as THREE from 'three'
import { OrbitControls } from 'three/examples/jsm/controls/OrbitControls.js'
import { seededRandom, shuffleInPlace } from '../../../models/random'
import { nearestOnScreen, PickGrid } from './pick-grid'
import { itemsInPolygon, type ScreenPoint } from './lasso'

const VERTEX_SHADER = `
attribute vec3 color;
attribute float visible;
uniform float pointSize;
uniform float pixelRatio;
varying vec3 vColor;
void main() {
  vColor = color;
  if (visible < 0.5) {
    // Hidden (a class toggled off): outside the clip volume, so no fragment is ever shaded.
    gl_Position = vec4(2.0, 2.0, 2.0, 1.0);
    gl_PointSize = 0.0;
    return;
  }
  vec4 mv = modelViewMatrix * vec4(position, 1.0);
  gl_Position = projectionMatrix * mv;
  // Points shrink with distance, but never below 2 px, so a dense map stays readable.
  gl_PointSize = max(2.0, pointSize * pixelRatio * (3.0 / -mv.z));
}`

const FRAGMENT_SHADER = `
varying vec3 vColor;
void main() {
  vec2 c = gl_PointCoord - vec2(0.5);
  float r = dot(c, c);
  if (r > 0.25) discard;
  gl_FragColor = vec4(vColor * (r > 0.16 ? 0.75 : 1.0), 1.0);
}`

/** True when WebGL runs on a CPU rasteriser (no GPU): then the renderer spares it work. */
export function isSoftwareGl(): boolean {
  const probe = document.createElement('canvas').getContext('webgl2') as WebGL2RenderingContext | null
  if (!probe) return true
  const info = probe.getExtension('WEBGL_debug_renderer_info')
  const name = info ? String(probe.getParameter(info.UNMASKED_RENDERER_WEBGL)) : ''
  probe.getExtension('WEBGL_lose_context')?.loseContext()
  return /SwiftShader|llvmpipe|softpipe|Software/i.test(name)
}

/**
 * On a software rasteriser each point costs about a microsecond of set-up and shading, so while the
 * camera moves the map draws this many points, a uniform random subset (the draw order is a fixed
 * random permutation and the subset is its head), and the whole map once the camera stops. A GPU
 * draws every point on every frame.
 */
const SOFTWARE_GL_MOTION_POINTS = 20_000
/**
 * A software rasteriser also pays per pixel of the canvas on every frame (clearing, compositing,
 * the preserved drawing buffer), about 30 ms at 1280x800 here: while the camera moves it renders at
 * this fraction of the resolution in each direction, and sharp again when the camera stops.
 */
const SOFTWARE_GL_MOTION_RESOLUTION = 0.5
/** The camera counts as still this long after its last change. */
const SETTLE_MS = 150

export interface ScatterOptions {
  background: string
  pointSize: number
  /** Keep the last frame readable (screenshots, tests); off only to measure its cost. */
  preserveDrawingBuffer: boolean
  /** Points drawn while the camera moves; default: all on a GPU, SOFTWARE_GL_MOTION_POINTS on software GL. */
  motionPoints: number
  /** Resolution while the camera moves (1 = full); default: 1 on a GPU, SOFTWARE_GL_MOTION_RESOLUTION on software GL. */
  motionResolution: number
}

export class LatentScatter {
  readonly canvas: HTMLCanvasElement
  private readonly renderer: THREE.WebGLRenderer
  private readonly scene = new THREE.Scene()
  private readonly camera = new THREE.PerspectiveCamera(50, 1, 0.01, 100)
  private readonly controls: OrbitControls
  private readonly geometry = new THREE.BufferGeometry()
  private readonly material: THREE.ShaderMaterial
  private readonly points: THREE.Points
  private readonly markers = new THREE.Group()
  private positions: Float32Array = new Float32Array(0)
  /** Per item, in item order (picking reads it); the GPU's copy is in draw order. */
  private visible: Float32Array = new Float32Array(0)
  /** Draw position j holds item drawOrder[j]. */
  private drawOrder: Uint32Array = new Uint32Array(0)
  private frameRequested = false
  private resizeObserver: ResizeObserver
  /** Every point's screen position, for screenPosition(); stale after any camera move (picking does not use it). */
  private screenCache: Float32Array | null = null
  /** The points bucketed in 3D for picking: built when the points have settled, or by the first pick. */
  private pickGrid: PickGrid | null = null
  private gridTimer = 0
  private readonly listeners: {
    hover: ((i: number | null) => void)[]
    click: ((i: number | null, e: MouseEvent) => void)[]
    lasso: ((outline: ScreenPoint[], done: boolean) => void)[]
  } = {
    hover: [],
    click: [],
    lasso: []
  }
  /** While on, a left-drag draws a lasso instead of orbiting or panning. */
  private lassoMode = false
  private highlighted: number | null = null
  private secondary: number | null = null
  private pinPositions: [number, number, number][] = []
  private pathLine: THREE.Line | null = null
  private readonly hoverColour: string
  private selected: number[] = []
  /** Points drawn while the camera moves (Infinity: all of them, on a GPU). */
  private readonly motionPoints: number
  /** Resolution while the camera moves, relative to the full one (below 1 on software GL). */
  private readonly motionResolution: number
  private readonly fullPixelRatio: number
  private lastCameraChange = -Infinity
  private settleTimer = 0

  constructor(
    private readonly container: HTMLElement,
    options: Partial<ScatterOptions> = {}
  ) {
    this.canvas = document.createElement('canvas')
    this.canvas.tabIndex = 0
    this.canvas.className = 'scatter-canvas'
    container.appendChild(this.canvas)
    // preserveDrawingBuffer lets screenshots and tests read the pixels that are on screen.
    // Multisampling costs a software rasteriser (SwiftShader, llvmpipe) several times the frame
    // time for round points that are already smooth-edged; a GPU does it for free.
    const softwareGl = isSoftwareGl()
    this.renderer = new THREE.WebGLRenderer({ canvas: this.canvas, antialias: !softwareGl, preserveDrawingBuffer: options.preserveDrawingBuffer ?? true })
    this.motionPoints = options.motionPoints ?? (softwareGl ? SOFTWARE_GL_MOTION_POINTS : Infinity)
    this.motionResolution = options.motionResolution ?? (softwareGl ? SOFTWARE_GL_MOTION_RESOLUTION : 1)
    this.fullPixelRatio = Math.min(window.devicePixelRatio, 2)
    this.renderer.setPixelRatio(this.fullPixelRatio)
    const background = new THREE.Color(options.background ?? '#15171c')
    this.scene.background = background
    // The hover ring contrasts with the background: white on dark maps, near-black on light ones.
    this.hoverColour = background.r * 0.3 + background.g * 0.59 + background.b * 0.11 > 0.5 ? '#111111' : '#ffffff'
    this.material = new THREE.ShaderMaterial({
      vertexShader: VERTEX_SHADER,
      fragmentShader: FRAGMENT_SHADER,
      uniforms: { pointSize: { value: options.pointSize ?? 6 }, pixelRatio: { value: this.renderer.getPixelRatio() } }
    })
    this.points = new THREE.Points(this.geometry, this.material)
    this.scene.add(this.points, this.markers)
    this.controls = new OrbitControls(this.camera, this.canvas)
    this.controls.enableDamping = false
    this.controls.addEventListener('change', () => {
      this.screenCache = null
      this.lastCameraChange = performance.now()
      // The full map once the camera has been still for a moment.
      clearTimeout(this.settleTimer)
      this.settleTimer = window.setTimeout(() => {
        this.lastCameraChange = -Infinity
        this.requestRender()
      }, SETTLE_MS)
      this.requestRender()
    })
    this.resetView()
    this.resizeObserver = new ResizeObserver(() => this.resize())
    this.resizeObserver.observe(container)
    this.resize()
    this.bindPointer()
  }

  on(event: 'hover', listener: (index: number | null) => void): void
  on(event: 'click', listener: (index: number | null, e: MouseEvent) => void): void
  /** The lasso's outline as it is drawn (`done` false) and once the button is released (`done` true). */
  on(event: 'lasso', listener: (outline: ScreenPoint[], done: boolean) => void): void
  on(event: 'hover' | 'click' | 'lasso', listener: (...args: never[]) => void): void {
    ;(this.listeners[event] as unknown[]).push(listener)
  }

  /** Left-drag draws a lasso (on) or moves the camera (off, the default). */
  setLassoMode(on: boolean): void {
    this.lassoMode = on
    this.controls.enabled = !on
    this.canvas.style.cursor = on ? 'crosshair' : ''
  }

  /** The visible items drawn inside a closed outline (CSS pixels relative to the canvas), in item order. */
  itemsInside(outline: ScreenPoint[]): Int32Array {
    return itemsInPolygon(this.screenPositions(), this.visible, outline)
  }

  /** The item ringed as hovered (in this view or a linked one), for tests and tooltips. */
  get highlightedIndex(): number | null {
    return this.highlighted
  }

  /** Where item `index` is in the map's own coordinates. */
  position(index: number): [number, number, number] {
    return [this.positions[index * 3], this.positions[index * 3 + 1], this.positions[index * 3 + 2]]
  }

  get count(): number {
    return this.positions.length / 3
  }

  /** Positions n*3 and colours n*3 (0..1). Keeps the camera unless `resetCamera`. */
  setPoints(positions: Float32Array, colours: Float32Array, resetCamera = false): void {
    const n = positions.length / 3
    const sameCount = positions.length === this.positions.length
    this.positions = positions
    if (!sameCount) {
      this.visible = new Float32Array(n).fill(1)
      this.drawOrder = drawOrder(n)
      this.geometry.setAttribute('visible', new THREE.BufferAttribute(new Float32Array(n).fill(1), 1))
    }
    // The GPU holds the points in draw order, so that the subset drawn while the camera moves is
    // the head of the buffers (an index buffer would make a software rasteriser walk all of them).
    this.geometry.setAttribute('position', new THREE.BufferAttribute(permuted(positions, 3, this.drawOrder), 3))
    this.geometry.setAttribute('color', new THREE.BufferAttribute(permuted(colours, 3, this.drawOrder), 3))
    this.geometry.computeBoundingSphere()
    this.pickGrid = null
    // Build the pick grid once the points stop arriving (a streaming projection sends several
    // frames a second), so that the first hover does not pay for it.
    clearTimeout(this.gridTimer)
    this.gridTimer = window.setTimeout(() => (this.pickGrid ??= new PickGrid(this.positions, this.count)), 200)
    this.screenCache = null
    if (resetCamera) this.resetView()
    this.refreshMarkers()
    this.requestRender()
  }

  /** Hide or show points (a class toggled off in the legend). */
  setVisibility(isVisible: (index: number) => boolean): void {
    for (let i = 0; i < this.visible.length; i++) this.visible[i] = isVisible(i) ? 1 : 0
    const attribute = this.geometry.getAttribute('visible') as THREE.BufferAttribute | undefined
    if (attribute) {
      const drawn = attribute.array as Float32Array
      for (let j = 0; j < drawn.length; j++) drawn[j] = this.visible[this.drawOrder[j]]
      attribute.needsUpdate = true
    }
    this.requestRender()
  }

  /** The hovered item (a ring), shown in every linked view. */
  highlight(index: number | null): void {
    if (this.highlighted === index) return
    this.highlighted = index
    this.refreshMarkers()
  }

  /** Selected items (filled markers): the inspected item; `second` the other end of an interpolation. */
  select(indices: number[], second: number | null = null): void {
    this.selected = indices
    this.secondary = second
    this.refreshMarkers()
  }

  /** Points pinned by clicking empty space (decoded places), drawn as diamonds. */
  setPins(positions: [number, number, number][]): void {
    this.pinPositions = positions
    this.refreshMarkers()
  }

  /** An interpolation path through the map (steps*3), or null to remove it. */
  setPath(positions: Float32Array | null): void {
    if (this.pathLine) {
      this.scene.remove(this.pathLine)
      this.pathLine.geometry.dispose()
      this.pathLine = null
    }
    if (positions && positions.length >= 6) {
      const geometry = new THREE.BufferGeometry()
      geometry.setAttribute('position', new THREE.BufferAttribute(positions, 3))
      this.pathLine = new THREE.Line(geometry, new THREE.LineBasicMaterial({ color: '#ff2d95', depthTest: false }))
      this.pathLine.renderOrder = 9
      const dots = new THREE.Points(geometry, new THREE.PointsMaterial({ color: '#ff2d95', size: 6, sizeAttenuation: false, depthTest: false }))
      this.pathLine.add(dots)
      this.scene.add(this.pathLine)
    }
    this.requestRender()
  }

  /**
   * The 3D place under (x, y) CSS pixels: where the view ray crosses the plane through the orbit
   * target facing the camera. Clicking empty space decodes this place.
   */
  pointAt(x: number, y: number): [number, number, number] {
    const ndc = new THREE.Vector2((x / this.canvas.clientWidth) * 2 - 1, 1 - (y / this.canvas.clientHeight) * 2)
    const ray = new THREE.Raycaster()
    ray.setFromCamera(ndc, this.camera)
    const normal = this.camera.getWorldDirection(new THREE.Vector3())
    const plane = new THREE.Plane().setFromNormalAndCoplanarPoint(normal, this.controls.target)
    const hit = ray.ray.intersectPlane(plane, new THREE.Vector3()) ?? this.controls.target.clone()
    return [hit.x, hit.y, hit.z]
  }

  private marker(index: number, colour: string, size: number): THREE.Points {
    return this.markerAt(this.positions.slice(index * 3, index * 3 + 3), colour, size)
  }

  private markerAt(position: Float32Array, colour: string, size: number): THREE.Points {
    const geometry = new THREE.BufferGeometry()
    geometry.setAttribute('position', new THREE.BufferAttribute(position, 3))
    const material = new THREE.PointsMaterial({ color: colour, size, sizeAttenuation: false, depthTest: false })
    const marker = new THREE.Points(geometry, material)
    marker.renderOrder = 10
    return marker
  }

  private refreshMarkers(): void {
    for (const child of [...this.markers.children]) {
      this.markers.remove(child)
      ;(child as THREE.Points).geometry.dispose()
    }
    if (this.highlighted !== null && this.highlighted < this.count) this.markers.add(this.marker(this.highlighted, this.hoverColour, 14))
    for (const index of this.selected) if (index < this.count) this.markers.add(this.marker(index, '#ff2d95', 11))
    if (this.secondary !== null && this.secondary < this.count) this.markers.add(this.marker(this.secondary, '#ffb000', 11))
    for (const pin of this.pinPositions) this.markers.add(this.markerAt(Float32Array.from(pin), '#ffb000', 9))
    this.requestRender()
  }

  /** A flat (2D) map: the camera looks straight at it and left-drag pans instead of orbiting. */
  setFlat(flat: boolean): void {
    if (this.controls.enableRotate === !flat) return
    this.controls.enableRotate = !flat
    this.controls.mouseButtons.LEFT = flat ? THREE.MOUSE.PAN : THREE.MOUSE.ROTATE
    this.resetView()
  }

  /** Frames the whole map: far enough that its bounding sphere fits the narrower field of view. */
  resetView(): void {
    const sphere = this.geometry.boundingSphere
    const centre = sphere ? sphere.center : new THREE.Vector3()
    // Maps are scaled to about [-1, 1]; a sphere from a few outliers should not shrink the bulk.
    const radius = Math.min(sphere?.radius ?? 1.2, 1.6)
    const verticalHalf = THREE.MathUtils.degToRad(this.camera.fov / 2)
    const horizontalHalf = Math.atan(Math.tan(verticalHalf) * this.camera.aspect)
    const distance = (radius * 1.05) / Math.sin(Math.min(verticalHalf, horizontalHalf))
    this.camera.position.set(centre.x, centre.y, centre.z + distance)
    this.controls.target.copy(centre)
    this.controls.update()
    this.requestRender()
  }

  focus(index: number): void {
    if (index >= this.count) return
    const target = new THREE.Vector3(this.positions[index * 3], this.positions[index * 3 + 1], this.positions[index * 3 + 2])
    const offset = this.camera.position.clone().sub(this.controls.target).setLength(0.9)
    this.controls.target.copy(target)
    this.camera.position.copy(target.clone().add(offset))
    this.controls.update()
  }

  /** Where point `index` is drawn, in CSS pixels relative to the canvas, or null when off screen. */
  screenPosition(index: number): { x: number; y: number } | null {
    const screen = this.screenPositions()
    const x = screen[index * 2]
    const y = screen[index * 2 + 1]
    return Number.isNaN(x) ? null : { x, y }
  }

  private screenPositions(): Float32Array {
    if (this.screenCache) return this.screenCache
    const n = this.count
    const out = new Float32Array(n * 2)
    const e = this.viewProjection()
    const width = this.canvas.clientWidth
    const height = this.canvas.clientHeight
    const p = this.positions
    for (let i = 0; i < n; i++) {
      const x = p[i * 3]
      const y = p[i * 3 + 1]
      const z = p[i * 3 + 2]
      const w = e[3] * x + e[7] * y + e[11] * z + e[15]
      if (w <= 0) {
        out[i * 2] = NaN
        out[i * 2 + 1] = NaN
        continue
      }
      out[i * 2] = ((e[0] * x + e[4] * y + e[8] * z + e[12]) / w + 1) * 0.5 * width
      out[i * 2 + 1] = (1 - (e[1] * x + e[5] * y + e[9] * z + e[13]) / w) * 0.5 * height
    }
    this.screenCache = out
    return out
  }

  private viewProjection(): number[] {
    this.camera.updateMatrixWorld()
    return new THREE.Matrix4().multiplyMatrices(this.camera.projectionMatrix, this.camera.matrixWorldInverse).elements
  }

  /**
   * The visible point nearest to (x, y) in CSS pixels within `radius`, ties to the lower index.
   * Looks only at the points in the 3D grid cells along the view ray, so its cost does not depend
   * on how recently the camera moved.
   */
  pick(x: number, y: number, radius = 8): number | null {
    if (this.count === 0) return null
    this.pickGrid ??= new PickGrid(this.positions, this.count)
    const width = this.canvas.clientWidth
    const height = this.canvas.clientHeight
    // Before the ray: it brings the camera's world matrix up to date (the controls move the camera
    // without updating it until the next render).
    const viewProjection = this.viewProjection()
    const raycaster = new THREE.Raycaster()
    raycaster.setFromCamera(new THREE.Vector2((x / width) * 2 - 1, 1 - (y / height) * 2), this.camera)
    const { origin, direction } = raycaster.ray
    return nearestOnScreen(
      this.pickGrid,
      this.positions,
      this.visible,
      {
        viewProjection,
        width,
        height,
        ray: { origin: [origin.x, origin.y, origin.z], direction: [direction.x, direction.y, direction.z] },
        tanHalfFov: Math.tan(THREE.MathUtils.degToRad(this.camera.fov / 2)),
        near: this.camera.near
      },
      x,
      y,
      radius
    )
  }

  private bindPointer(): void {
    let downAt: { x: number; y: number } | null = null
    const local = (e: MouseEvent) => {
      const rect = this.canvas.getBoundingClientRect()
      return { x: e.clientX - rect.left, y: e.clientY - rect.top }
    }
    let outline: ScreenPoint[] | null = null
    this.canvas.addEventListener('pointerdown', (e) => {
      downAt = local(e)
      if (this.lassoMode && e.button === 0) {
        outline = [downAt]
        this.canvas.setPointerCapture(e.pointerId)
      }
    })
    this.canvas.addEventListener('pointerup', () => {
      if (!outline) return
      const done = outline
      outline = null
      for (const l of this.listeners.lasso) l(done, true)
    })
    this.canvas.addEventListener('pointermove', (e) => {
      if (outline) {
        outline.push(local(e))
        for (const l of this.listeners.lasso) l(outline, false)
        return
      }
      if (e.buttons) return
      const { x, y } = local(e)
      const index = this.pick(x, y)
      for (const l of this.listeners.hover) l(index)
    })
    this.canvas.addEventListener('pointerleave', () => {
      for (const l of this.listeners.hover) l(null)
    })
    this.canvas.addEventListener('click', (e) => {
      const at = local(e)
      // A drag that orbited the camera is not a click.
      if (downAt && Math.hypot(at.x - downAt.x, at.y - downAt.y) > 4) return
      const index = this.pick(at.x, at.y)
      for (const l of this.listeners.click) l(index, e)
    })
    this.canvas.addEventListener('dblclick', (e) => {
      const { x, y } = local(e)
      const index = this.pick(x, y)
      if (index !== null) this.focus(index)
    })
    this.canvas.addEventListener('keydown', (e) => {
      if (e.key === 'r' || e.key === 'R') this.resetView()
    })
  }

  private resize(): void {
    const width = Math.max(1, this.container.clientWidth)
    const height = Math.max(1, this.container.clientHeight)
    this.renderer.setSize(width, height, false)
    this.canvas.style.width = `${width}px`
    this.canvas.style.height = `${height}px`
    this.camera.aspect = width / height
    this.camera.updateProjectionMatrix()
    this.screenCache = null
    this.requestRender()
  }

  requestRender(): void {
    if (this.frameRequested) return
    this.frameRequested = true
    requestAnimationFrame(() => {
      this.frameRequested = false
      this.draw()
    })
  }

  /** Renders now (tests and screenshots read pixels right after). */
  renderNow(): void {
    this.draw()
  }

  /**
   * The map as it is on screen, drawn again at `scale` times its size (the canvas's CSS size): every
   * point, sharp, each point and marker as large relative to the picture as on screen. For a figure.
   */
  snapshot(scale: number): HTMLCanvasElement {
    const ratio = this.renderer.getPixelRatio()
    const render = (pixelRatio: number) => {
      this.renderer.setPixelRatio(pixelRatio)
      this.material.uniforms.pixelRatio.value = pixelRatio
      this.geometry.setDrawRange(0, Infinity)
      this.renderer.render(this.scene, this.camera)
    }
    render(scale)
    // Copied before the canvas goes back to its own size (which clears it).
    const out = document.createElement('canvas')
    out.width = this.canvas.width
    out.height = this.canvas.height
    ;(out.getContext('2d') as CanvasRenderingContext2D).drawImage(this.canvas, 0, 0)
    render(ratio)
    return out
  }

  /** How many points the last frame drew (all of them unless the camera was moving on software GL). */
  get drawnPoints(): number {
    return Math.min(this.count, this.geometry.drawRange.count)
  }

  private draw(): void {
    const moving = performance.now() - this.lastCameraChange < SETTLE_MS
    this.geometry.setDrawRange(0, moving && this.count > this.motionPoints ? this.motionPoints : Infinity)
    const pixelRatio = this.fullPixelRatio * (moving ? this.motionResolution : 1)
    if (this.renderer.getPixelRatio() !== pixelRatio) {
      // Resizes the drawing buffer (the canvas keeps its CSS size); points keep their CSS size.
      this.renderer.setPixelRatio(pixelRatio)
      this.material.uniforms.pixelRatio.value = pixelRatio
    }
    this.renderer.render(this.scene, this.camera)
  }

  dispose(): void {
    clearTimeout(this.settleTimer)
    clearTimeout(this.gridTimer)
    this.resizeObserver.disconnect()
    this.controls.dispose()
    this.geometry.dispose()
    this.material.dispose()
    this.renderer.dispose()
    this.canvas.remove()
  }
}

/** values (n*width) rearranged so that row j is row order[j] of the input. */
function permuted(values: Float32Array, width: number, order: Uint32Array): Float32Array {
  const out = new Float32Array(order.length * width)
  for (let j = 0; j < order.length; j++) {
    const i = order[j] * width
    for (let d = 0; d < width; d++) out[j * width + d] = values[i + d]
  }
  return out
}

/** 0..n-1 in a fixed pseudo-random order: any head of it is a uniform sample. */
function drawOrder(n: number): Uint32Array {
  return shuffleInPlace(
    Uint32Array.from({ length: n }, (_, i) => i),
    seededRandom(12345)
  )
}
