// The Electron main process: the window, the native folder dialog, and a relay between the
// renderer (over IPC, every argument validated here) and the engine, which runs in its own
// utility process so that training never blocks the window and tfjs-node-gpu stays out of main.
import { join } from 'node:path'
import { app, BrowserWindow, dialog, ipcMain, session, shell, utilityProcess, type UtilityProcess } from 'electron'
import {
  ContractError,
  IPC_EVENT_CHANNEL,
  IPC_REQUEST_CHANNEL,
  MAIN_PROCESS_REQUESTS,
  validateRequest,
  type EventMessage,
  type ResponseMessage
} from '../common/contract'

const RENDERER_URL = process.env.ELECTRON_RENDERER_URL
const RENDERER_FILE = join(__dirname, '../renderer/index.html')

let window: BrowserWindow | null = null
let engine: UtilityProcess | null = null
let nextEngineId = 1
const pending = new Map<number, (response: ResponseMessage) => void>()

function startEngine(): UtilityProcess {
  const child = utilityProcess.fork(join(__dirname, 'engine.js'), [], {
    serviceName: 'Latent Cartographer engine',
    env: { ...process.env, CARTOGRAPHER_DATA_DIR: join(app.getPath('userData'), 'data') }
  })
  child.on('message', (message: ResponseMessage | EventMessage) => {
    if (message.type === 'response') {
      pending.get(message.id)?.(message)
      pending.delete(message.id)
    } else window?.webContents.send(IPC_EVENT_CHANNEL, message)
  })
  child.on('exit', (code) => {
    for (const [id, resolve] of pending) resolve({ type: 'response', id, ok: false, error: `the engine stopped (exit code ${code})` })
    pending.clear()
    engine = null
  })
  return child
}

function askEngine(message: object): Promise<ResponseMessage> {
  engine ??= startEngine()
  const id = nextEngineId++
  return new Promise((resolve) => {
    pending.set(id, resolve)
    engine?.postMessage({ ...message, id })
  })
}

/** Only our own page may talk to the engine (not a frame that navigated elsewhere). */
function trustedSender(url: string | undefined): boolean {
  if (!url) return false
  if (RENDERER_URL && url.startsWith(RENDERER_URL)) return true
  return url.startsWith('file://') && decodeURIComponent(new URL(url).pathname) === RENDERER_FILE.replace(/\\/g, '/')
}

ipcMain.handle(IPC_REQUEST_CHANNEL, async (event, raw: unknown): Promise<ResponseMessage> => {
  const id = typeof (raw as { id?: unknown })?.id === 'number' ? (raw as { id: number }).id : -1
  try {
    if (!trustedSender(event.senderFrame?.url)) throw new ContractError('request from an unexpected page')
    const request = validateRequest(raw)
    if (MAIN_PROCESS_REQUESTS.includes(request.name)) {
      const choice = await dialog.showOpenDialog(window as BrowserWindow, {
        title: 'Open a dataset folder',
        properties: ['openDirectory']
      })
      return { type: 'response', id, ok: true, result: { path: choice.canceled ? null : choice.filePaths[0] ?? null } }
    }
    const response = await askEngine(request)
    return { ...response, id }
  } catch (error) {
    return { type: 'response', id, ok: false, error: error instanceof Error ? error.message : String(error) }
  }
})

function createWindow(): void {
  window = new BrowserWindow({
    width: 1440,
    height: 900,
    minWidth: 1024,
    minHeight: 700,
    title: 'Latent Cartographer',
    backgroundColor: '#15171c',
    webPreferences: {
      preload: join(__dirname, '../preload/index.js'),
      contextIsolation: true,
      sandbox: true,
      nodeIntegration: false,
      webSecurity: true,
      spellcheck: false
    }
  })
  // No navigation away from the app and no new windows; links open in the user's browser.
  window.webContents.on('will-navigate', (event) => event.preventDefault())
  window.webContents.setWindowOpenHandler(({ url }) => {
    if (url.startsWith('https://')) void shell.openExternal(url)
    return { action: 'deny' }
  })
  if (RENDERER_URL) void window.loadURL(RENDERER_URL)
  else void window.loadFile(RENDERER_FILE)
  window.on('closed', () => (window = null))
}

app.whenReady().then(() => {
  // Deny every permission request (camera, notifications...): the app needs none.
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false))
  engine = startEngine()
  createWindow()
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createWindow()
  })
})

app.on('window-all-closed', () => {
  engine?.kill()
  if (process.platform !== 'darwin') app.quit()
})
