// The desktop app itself, where Electron can launch: the window opens with the secure settings and
// reaches the engine. Where it cannot (no binary, no display), the test is skipped with the reason.
import { join } from 'node:path'
import { _electron as electron, expect, test } from '@playwright/test'

function electronUnavailable(): string | null {
  try {
    require('electron')
  } catch (error) {
    return `Electron cannot launch here: ${String((error as Error).message).split('\n')[0]}`
  }
  if (process.platform === 'linux' && !process.env.DISPLAY) return 'Electron cannot launch here: no DISPLAY (run under xvfb-run)'
  return null
}

test('the desktop window opens and talks to the engine', async () => {
  const reason = electronUnavailable()
  test.skip(reason !== null, reason ?? '')
  const app = await electron.launch({ args: [join(__dirname, '../..')] })
  const window = await app.firstWindow()
  await expect(window.getByTestId('backend')).toContainText('backend:', { timeout: 60_000 })
  // No Node in the page (nodeIntegration off, sandbox on): only the bridge the preload exposed.
  const page = await window.evaluate(() => ({
    require: typeof (window as unknown as { require?: unknown }).require,
    process: typeof (window as unknown as { process?: unknown }).process,
    bridge: (window as unknown as { cartographer?: { mode: string } }).cartographer?.mode
  }))
  expect(page).toEqual({ require: 'undefined', process: 'undefined', bridge: 'electron' })
  await app.close()
})
