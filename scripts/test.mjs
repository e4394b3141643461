// `npm test`: build, type-check (tsc, noUncheckedIndexedAccess outside the numerical kernels, svelte-check), lint (ESLint), format (Prettier), unit tests (vitest), then end-to-end tests
// (Playwright in Debian's Chromium against browser mode and the real engine). Every stage runs even
// when an earlier one fails, and the last line sums the tests: "N passed, N failed, N skipped".
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const stages = [
  { name: 'build', command: 'npx', args: ['electron-vite', 'build'] },
  { name: 'tsc', command: 'npx', args: ['tsc', '--noEmit', '-p', 'tsconfig.json'] },
  { name: 'index-access', command: 'node', args: ['scripts/check-index-access.mjs'] },
  { name: 'svelte-check', command: 'npx', args: ['svelte-check', '--tsconfig', './tsconfig.json', '--threshold', 'warning', '--fail-on-warnings'] },
  { name: 'lint', command: 'npx', args: ['eslint', '--max-warnings', '0', '.'] },
  { name: 'format', command: 'npx', args: ['prettier', '--check', '.'] },
  { name: 'unit', command: 'npx', args: ['vitest', 'run', '--reporter=default', '--reporter=json', '--outputFile.json=test-results/unit.json'] },
  { name: 'e2e', command: 'npx', args: ['playwright', 'test'] }
]

mkdirSync('test-results', { recursive: true })

// WebGPU without a GPU: Debian's chromium ships SwiftShader's Vulkan driver, which Dawn (the npm
// package webgpu) accepts as a software adapter. Where it is installed the webgpu tests run on it.
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json'
const env = { ...process.env, FORCE_COLOR: '0' }
if (existsSync(SWIFTSHADER_ICD)) {
  const runtimeDir = join(tmpdir(), `cartographer-xdg-${process.getuid?.() ?? 'user'}`)
  mkdirSync(runtimeDir, { recursive: true, mode: 0o700 })
  Object.assign(env, { VK_ICD_FILENAMES: SWIFTSHADER_ICD, XDG_RUNTIME_DIR: runtimeDir, CARTOGRAPHER_WEBGPU_TESTS: '1' })
  console.log(`webgpu tests: on SwiftShader (${SWIFTSHADER_ICD})`)
} else console.log(`webgpu tests: skipped, no ${SWIFTSHADER_ICD} (install Debian's chromium)`)
const totals = { passed: 0, failed: 0, skipped: 0 }
const failedStages = []

for (const stage of stages) {
  console.log(`\n=== ${stage.name}: ${stage.command} ${stage.args.join(' ')}`)
  const started = Date.now()
  const result = spawnSync(stage.command, stage.args, { stdio: 'inherit', env })
  const seconds = ((Date.now() - started) / 1000).toFixed(1)
  const ok = result.status === 0
  console.log(`=== ${stage.name}: ${ok ? 'ok' : `FAILED (exit ${result.status ?? result.signal})`} in ${seconds} s`)
  if (!ok) failedStages.push(stage.name)
}

function readJson(path) {
  return existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : null
}

const unit = readJson('test-results/unit.json')
if (unit) {
  totals.passed += unit.numPassedTests
  totals.failed += unit.numFailedTests
  totals.skipped += unit.numPendingTests + unit.numTodoTests
  console.log(`unit: ${unit.numPassedTests} passed, ${unit.numFailedTests} failed, ${unit.numPendingTests} skipped`)
}
const e2e = readJson('test-results/e2e.json')
if (e2e) {
  const { expected, unexpected, skipped, flaky } = e2e.stats
  totals.passed += expected + flaky
  totals.failed += unexpected
  totals.skipped += skipped
  console.log(`e2e: ${expected + flaky} passed, ${unexpected} failed, ${skipped} skipped`)
  const walk = (suite) => {
    for (const spec of suite.specs ?? [])
      for (const t of spec.tests ?? [])
        for (const r of t.results ?? []) {
          for (const a of r.annotations ?? t.annotations ?? []) if (a.type === 'skip') console.log(`  skipped: ${spec.title}: ${a.description}`)
        }
    for (const child of suite.suites ?? []) walk(child)
  }
  for (const suite of e2e.suites ?? []) walk(suite)
}
// Stages without a test count (build, tsc, svelte-check) count as one failed test when they fail.
for (const name of failedStages) if (!['unit', 'e2e'].includes(name)) totals.failed++
if (failedStages.length) console.log(`failed stages: ${failedStages.join(', ')}`)
console.log(`${totals.passed} passed, ${totals.failed} failed, ${totals.skipped} skipped`)
process.exit(failedStages.length || totals.failed ? 1 : 0)
