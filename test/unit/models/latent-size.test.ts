// The one "latent size" knob: the engine and the window spread it over a family's spaces with the
// same shares, and the window's default size (16) builds each family's default model.
import { describe, expect, it } from 'vitest'
import { FAMILY_DEFAULTS, FAMILY_NAMES, latentDimsFor } from '../../../models/families'
import { DEFAULT_LATENT_SIZE, spreadLatentSize } from '../../../models/latent-size'

describe('the latent size knob', () => {
  it("gives every family its default latent sizes at the window's default of 16", () => {
    expect(DEFAULT_LATENT_SIZE).toBe(16)
    for (const family of FAMILY_NAMES) expect(latentDimsFor(family, DEFAULT_LATENT_SIZE)).toEqual(FAMILY_DEFAULTS[family].latentDims)
  })

  it('keeps the proportions at other sizes, rounding down, never below a space minimum', () => {
    expect(latentDimsFor('cdvae', 24)).toEqual({ z_l: 12, z_u: 7 })
    expect(latentDimsFor('cdvae', 2)).toEqual({ z_l: 1, z_u: 1 })
    expect(latentDimsFor('srvae', 3)).toEqual({ u: 2, z: 3 })
    expect(latentDimsFor('srvae', 33)).toEqual({ u: 16, z: 33 })
    expect(latentDimsFor('vae', 7)).toEqual({ z: 7 })
  })

  it('is the same arithmetic the window runs on the shares engine.info sends', () => {
    const shares = JSON.parse(JSON.stringify(FAMILY_DEFAULTS.cdvae.latentShares))
    expect(spreadLatentSize(shares, 40)).toEqual(latentDimsFor('cdvae', 40))
    expect(Object.keys(spreadLatentSize(shares, 40))).toEqual(['z_l', 'z_u'])
  })
})
