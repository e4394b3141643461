// Class colours readable by colour-blind users: Okabe-Ito for up to 8 classes, Tableau 10 for 9-10,
// then evenly spaced hues (beyond ten classes no qualitative palette stays distinguishable).
import { Color, SRGBColorSpace } from 'three'

const OKABE_ITO = ['#E69F00', '#56B4E9', '#009E73', '#F0E442', '#0072B2', '#D55E00', '#CC79A7', '#BBBBBB']
const TABLEAU_10 = ['#4E79A7', '#F28E2B', '#E15759', '#76B7B2', '#59A14F', '#EDC948', '#B07AA1', '#FF9DA7', '#9C755F', '#BAB0AC']

export const UNLABELLED_COLOUR = '#8FA3BF'

/** A CSS colour as the palettes give them (#rrggbb or hsl()) as sRGB components in [0, 1]. */
export function colourToRgb(css: string): [number, number, number] {
  const { r, g, b } = new Color(css).getRGB({ r: 0, g: 0, b: 0 }, SRGBColorSpace)
  return [r, g, b]
}

export function classPalette(count: number): string[] {
  if (count <= OKABE_ITO.length) return OKABE_ITO.slice(0, count)
  if (count <= TABLEAU_10.length) return TABLEAU_10.slice(0, count)
  return Array.from({ length: count }, (_, i) => `hsl(${Math.round((360 * i) / count)}, 65%, 58%)`)
}

export const SPLIT_COLOURS = { train: '#0072B2', heldout: '#E69F00' }

// A perceptually ordered sequential map (viridis, 5 stops, linearly interpolated), for values in [0, 1].
const VIRIDIS: [number, number, number][] = [
  [0.267, 0.005, 0.329],
  [0.229, 0.322, 0.546],
  [0.128, 0.567, 0.551],
  [0.369, 0.789, 0.383],
  [0.993, 0.906, 0.144]
]

export function sequentialColour(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1)
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x))
  const f = x - i
  const a = VIRIDIS[i]
  const b = VIRIDIS[i + 1]
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f]
}
