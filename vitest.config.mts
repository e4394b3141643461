import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts'],
    globalSetup: ['test/unit/global-setup.ts'],
    environment: 'node',
    // tfjs training tests are CPU-heavy; two cores means one test file at a time is faster overall.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000
  }
})
