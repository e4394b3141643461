// Class colours readable by colour-blind users: Okabe-Ito for up to 8 classes, Tableau 10 for 9-10,
// then evenly spaced hues (beyond ten classes no qualitative palette stays distinguishable).
const OKABE_ITO = ['#E69F00', '#56B4E9', '#009E73', '#F0E442', '#0072B2', '#D55E00', '#CC79A7', '#BBBBBB']
const TABLEAU_10 = ['#4E79A7', '#F28E2B', '#E15759', '#76B7B2', '#59A14F', '#EDC948', '#B07AA1', '#FF9DA7', '#9C755F', '#BAB0AC']

export const UNLABELLED_COLOUR = '#8FA3BF'

export function classPalette(count: number): string[] {
  if (count <= OKABE_ITO.length) return OKABE_ITO.slice(0, count)
  if (count <= TABLEAU_10.length) return TABLEAU_10.slice(0, count)
  return Array.from({ length: count }, (_, i) => `hsl(${Math.round((360 * i) / count)}, 65%, 58%)`)
}
