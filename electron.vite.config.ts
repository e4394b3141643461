import { resolve } from 'node:path'
import { defineConfig } from 'electron-vite'
import { svelte } from '@sveltejs/vite-plugin-svelte'

// One build produces every process's code: the Electron main process, the engine (which runs as a
// child process of Electron or of the browser-mode host), the browser-mode host itself and the CLI.
// All Node-side entries share the `main` build so that they share chunks (models/, contract).
export default defineConfig({
  main: {
    build: {
      outDir: 'out/main',
      rollupOptions: {
        input: {
          index: resolve(__dirname, 'electron/main/index.ts'),
          engine: resolve(__dirname, 'electron/engine/process.ts'),
          'projection-worker': resolve(__dirname, 'electron/engine/projection/worker.ts'),
          'projection-layout-worker': resolve(__dirname, 'electron/engine/projection/layout-worker.ts'),
          'train-worker': resolve(__dirname, 'electron/engine/training/worker.ts'),
          host: resolve(__dirname, 'electron/host/serve.ts'),
          cli: resolve(__dirname, 'electron/cli/cartographer.ts')
        }
      }
    }
  },
  preload: {
    build: {
      outDir: 'out/preload',
      rollupOptions: { input: { index: resolve(__dirname, 'electron/preload/index.ts') } }
    }
  },
  renderer: {
    root: resolve(__dirname, 'renderer'),
    plugins: [svelte({ configFile: resolve(__dirname, 'svelte.config.mjs') })],
    build: {
      outDir: resolve(__dirname, 'out/renderer'),
      rollupOptions: { input: { index: resolve(__dirname, 'renderer/index.html'), bench: resolve(__dirname, 'renderer/bench.html') } }
    }
  }
})
