// The run folder's files: a latest.json may only name a checkpoint folder of its own run.
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { RunFolder } from '../../../../electron/engine/run/folder'
import { readdir } from 'node:fs/promises'

describe('run folder storage', () => {
  it('refuses a latest.json that points outside its run folder', async () => {
    const runDir = await mkdtemp(join(tmpdir(), 'cartographer-storage-'))
    const elsewhere = await mkdtemp(join(tmpdir(), 'cartographer-elsewhere-'))
    await writeFile(join(elsewhere, 'checkpoint.json'), '{}')
    for (const pointer of ['../' + elsewhere.split('/').pop(), elsewhere, 'ckpt-1/../../x', '']) {
      await writeFile(join(runDir, 'latest.json'), JSON.stringify({ checkpoint: pointer, step: 1, savedAt: 'now' }))
      await expect(new RunFolder(runDir).latestCheckpoint()).rejects.toThrow(/does not name a checkpoint folder of this run/)
    }
  })

  it('has no checkpoint without a latest.json', async () => {
    expect(await new RunFolder(await mkdtemp(join(tmpdir(), 'cartographer-storage-'))).latestCheckpoint()).toBeNull()
  })

  it('removes what interrupted writes left behind, and nothing else', async () => {
    const runDir = await mkdtemp(join(tmpdir(), 'cartographer-storage-'))
    await mkdir(join(runDir, 'ckpt-00000010'))
    await writeFile(join(runDir, 'run.json'), '{}')
    await writeFile(join(runDir, 'latest.json.tmp-12-3456'), '{')
    await writeFile(join(runDir, 'ckpt-00000010', 'weights.bin'), 'w')
    await writeFile(join(runDir, 'ckpt-00000010', 'weights.bin.tmp-12-3457'), 'half')
    await new RunFolder(runDir).removeStaleTemporaries()
    expect((await readdir(runDir)).sort()).toEqual(['ckpt-00000010', 'run.json'])
    expect(await readdir(join(runDir, 'ckpt-00000010'))).toEqual(['weights.bin'])
  })
})
