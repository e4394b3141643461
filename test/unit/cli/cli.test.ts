// The headless CLI (issue 12): its exit codes (0 done, 1 the work failed, 2 a bad command line
// naming the option), and --resume continuing a run as it was started. Runs the CLI in-process.
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { main } from '../../../electron/cli/cartographer'
import { writeShapesFolder } from '../../../electron/engine/datasets/shapes'
import { RunFolder } from '../../../electron/engine/run/folder'
import { useWasmBackend } from '../training-fixture'

useWasmBackend()

/** Runs the CLI, returning its exit code and what it printed. */
async function cli(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = []
  const err: string[] = []
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => void out.push(a.join(' ')))
  const error = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void err.push(a.join(' ')))
  const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true)
  try {
    const code = await main(argv)
    return { code, out: out.join('\n'), err: err.join('\n') }
  } finally {
    log.mockRestore()
    error.mockRestore()
    write.mockRestore()
  }
}

let data: string
beforeAll(async () => {
  data = await mkdtemp(join(tmpdir(), 'cartographer-cli-data-'))
  await writeShapesFolder(data, { countPerClass: 30, size: 16, seed: 2 })
  process.env.CARTOGRAPHER_TRAIN_WORKERS = '1'
})
afterEach(() => vi.restoreAllMocks())

describe('cartographer command line', () => {
  it('--help and --version exit 0; train --help shows the usage', async () => {
    expect((await cli('--help')).code).toBe(0)
    expect(await cli('train', '--help')).toMatchObject({ code: 0, out: expect.stringContaining('cartographer train') })
    const version = await cli('--version')
    expect(version.code).toBe(0)
    expect(version.out).toMatch(/^\d+\.\d+\.\d+$/)
  })

  it.each([
    [['train', '--out', '/tmp/x'], /train needs --data <folder> and --out <dir>/],
    [['train', '--data', 'd', '--out', 'o', '--batch', '0'], /--batch must be a whole number from 1 to 4096 \(got "0"\)/],
    [['train', '--data', 'd', '--out', 'o', '--epochs', '0'], /--epochs must be a whole number from 1/],
    [['train', '--data', 'd', '--out', 'o', '--epochs', 'abc'], /--epochs must be a whole number/],
    [['train', '--data', 'd', '--out', 'o', '--lr', 'abc'], /--lr must be a number/],
    [['train', '--data', 'd', '--out', 'o', '--latent', '0'], /--latent must be a whole number from 2 to 512/],
    [['train', '--data', 'd', '--out', 'o', '--max-items', '0'], /--max-items must be a whole number from 16/],
    [['train', '--data', 'd', '--out', 'o', '--kl-weight', 'z_l'], /--kl-weight must be SPACE=W/],
    [['train', '--data', 'd', '--out', 'o', '--model', 'gan'], /--model must be vae, srvae or cdvae/],
    [['train', '--data', 'd', '--out', 'o', '--frobnicate'], /Unknown option '--frobnicate'/],
    [['fly'], /unknown command "fly"/]
  ])('exits 2 naming the problem: %j', async (argv, reason) => {
    const result = await cli(...argv)
    expect(result.code).toBe(2)
    expect(result.err).toMatch(reason)
  })

  it("export writes a trained run's latents as NPY, CSV, a projector folder and its model as LayersModels", async () => {
    const out = await mkdtemp(join(tmpdir(), 'cartographer-cli-export-run-'))
    expect((await cli('train', '--data', data, '--out', out, '--model', 'cdvae', '--epochs', '1', '--latent', '4', '--prior-radius', '8')).code).toBe(0)
    // The class prior's means start where --prior-radius put them, and run.json says so.
    expect(JSON.parse(await readFile(join(out, 'run.json'), 'utf8')).config.classPriorRadius).toBe(8)
    const target = await mkdtemp(join(tmpdir(), 'cartographer-cli-export-'))
    const result = await cli('export', '--run', out, '--out', target, '--format', 'npy,projector,model')
    expect(result.code).toBe(0)
    expect(result.out).toMatch(/wrote \d+ files/)
    const npy = await readFile(join(target, 'latents-z_l.npy'))
    expect(npy.subarray(1, 6).toString('latin1')).toBe('NUMPY')
    expect(npy.toString('latin1', 10, 128)).toMatch(/'shape': \(\d+, 2\)/)
    expect((await readFile(join(target, 'projector', 'projector_config.pbtxt'), 'utf8')).match(/embeddings \{/g)).toHaveLength(2)
    // The model from the run's last checkpoint: --latent 4 gives the CDVAE z_l 2 and z_u 1 (floor of
    // 4 x 5/16), both into the decoder.
    const decoder = JSON.parse(await readFile(join(target, 'model', 'decoder', 'model.json'), 'utf8'))
    expect(decoder.format).toBe('layers-model')
    expect(JSON.stringify(decoder.modelTopology)).toContain('"batch_input_shape":[null,2]')
    expect(JSON.stringify(decoder.modelTopology)).toContain('"batch_input_shape":[null,1]')
    expect(JSON.parse(await readFile(join(target, 'model', 'priors.json'), 'utf8')).z_l.means[0]).toHaveLength(2)
    expect((await cli('export', '--run', out, '--out', target, '--format', 'parquet')).err).toMatch(/--format takes npy, csv, projector/)
    expect((await cli('export', '--out', target)).code).toBe(2)
  })

  it('--resume continues a run with its own options, only the epochs left, and leaves no temporaries', async () => {
    const out = await mkdtemp(join(tmpdir(), 'cartographer-cli-run-'))
    const first = await cli('train', '--data', data, '--out', out, '--model', 'vae', '--epochs', '1', '--max-items', '100', '--latent', '4', '--seed', '3')
    expect(first.code).toBe(0)
    const run = JSON.parse(await readFile(join(out, 'run.json'), 'utf8'))
    expect(run).toMatchObject({ maxTrainItems: 100, options: { epochs: 1, seed: 3 } })
    const metrics = JSON.parse(await readFile(join(out, 'metrics.json'), 'utf8'))
    expect(metrics.health.z.klPerDim).toHaveLength(4)
    // The importance-weighted bound is stored beside the ELBO, and printed.
    expect(metrics.iwae).toMatchObject({ samples: 100 })
    expect(metrics.iwae.items).toBeGreaterThan(0)
    expect(metrics.iwae.negLogLikelihood).toBeGreaterThan(0)
    expect(first.out).toMatch(/-log p\(x\)\s+<= \d+\.\d+ ± \d+\.\d+ nats .*K = 100/)
    // A finished run has nothing to resume; --epochs extends it.
    expect((await cli('train', '--out', out, '--resume')).out).toMatch(/is finished \(1 of 1 epochs\): nothing to resume/)
    await writeFile(join(out, 'latest.json.tmp-123-456'), '{"half')
    const resumed = await cli('train', '--out', out, '--resume', '--epochs', '2')
    expect(resumed.code).toBe(0)
    expect(resumed.out).toMatch(/resuming at epoch 2 of 2/)
    expect(resumed.out).toMatch(/epoch 2: held-out/)
    expect(resumed.out).not.toMatch(/epoch 3/)
    // The item cap it was started with holds: 100 items in steps of 32.
    expect(resumed.out).toMatch(/2 epochs of 4 steps/)
    expect((await readdir(out)).filter((f) => f.includes('.tmp-'))).toEqual([])
    expect((await new RunFolder(out).latestCheckpoint())?.document.position?.epoch).toBe(2)
  }, 300_000)
})
