// `npm start`: opens the desktop app. Where Electron cannot start (no binary, no display), it says
// so in one line and serves the same UI in browser mode on 127.0.0.1 instead.
// `npm start -- --browser` asks for browser mode directly.
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(import.meta.url)
const args = process.argv.slice(2)

function browserMode(reason) {
  if (reason) console.log(`Electron cannot start here (${reason}); serving the same UI in browser mode instead.`)
  const host = spawn(process.execPath, [join(root, 'out/main/host.js'), ...args.filter((a) => a !== '--browser')], { stdio: 'inherit' })
  host.on('exit', (code) => process.exit(code ?? 0))
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => host.kill(signal))
}

if (args.includes('--browser')) browserMode(null)
else {
  let electronBinary = null
  try {
    electronBinary = require('electron')
  } catch (error) {
    browserMode(String(error.message).split('\n')[0])
  }
  if (electronBinary) {
    if (process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) {
      browserMode('no display: DISPLAY and WAYLAND_DISPLAY are unset')
    } else {
      const startedAt = Date.now()
      let stderr = ''
      const app = spawn(electronBinary, [root], { stdio: ['inherit', 'inherit', 'pipe'] })
      app.stderr.on('data', (chunk) => {
        stderr += chunk
        process.stderr.write(chunk)
      })
      app.on('error', (error) => browserMode(error.message))
      app.on('exit', (code) => {
        // A crash within seconds of launch is a platform that cannot run Electron, not a user quitting.
        if (code !== 0 && Date.now() - startedAt < 10_000) browserMode(stderr.trim().split('\n').pop() || `exit code ${code}`)
        else process.exit(code ?? 0)
      })
    }
  }
}
