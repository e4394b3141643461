// Every unit test's temporary files in one folder, removed when the run ends: the tests make
// hundreds of run folders, datasets and caches with mkdtemp(tmpdir()), and os.tmpdir() reads
// TMPDIR, which the test workers inherit from here.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export default function setup(): () => void {
  const root = mkdtempSync(join(tmpdir(), 'cartographer-unit-'))
  const previous = process.env.TMPDIR
  process.env.TMPDIR = root
  return () => {
    if (previous === undefined) delete process.env.TMPDIR
    else process.env.TMPDIR = previous
    rmSync(root, { recursive: true, force: true })
  }
}
