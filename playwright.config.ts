import { defineConfig } from '@playwright/test'

// End-to-end tests drive the real UI in Debian's Chromium (never a downloaded browser) against the
// real engine in browser mode. The flags give WebGL2 through SwiftShader in headless mode and keep
// Chromium from reaching for the network (platform-facts.md).
export default defineConfig({
  testDir: 'test/e2e',
  timeout: 300_000,
  expect: { timeout: 30_000 },
  workers: 1,
  // A test that fails on CI is tried once more (its trace is kept), so a rare hang in software
  // WebGL does not fail the build unnoticed: the retry shows as "flaky" in the report.
  retries: process.env.CI ? 1 : 0,
  reporter: [['list'], ['json', { outputFile: 'test-results/e2e.json' }]],
  outputDir: 'test-results/e2e-artifacts',
  use: {
    viewport: { width: 1280, height: 800 },
    // No action waits for ever: a disabled button or a hung page fails in 30 s with its cause.
    actionTimeout: 30_000,
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
        '--enable-unsafe-swiftshader',
        '--use-angle=swiftshader'
      ]
    }
  }
})
