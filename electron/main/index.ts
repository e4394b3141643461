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
  describeRequestError,
  requestIdOf,
  validateRequest,
  type EventMessage,
  type ResponseMessage
} from '../common/contract'
import { PendingReplies } from '../common/replies'

// The dev server's address, in development only: a packaged app never loads a page from elsewhere,
// whatever the environment says.
const RENDERER_URL = app.isPackaged ? undefined : process.env.ELECTRON_RENDERER_URL
const RENDERER_FILE = join(__dirname, '../renderer/index.html')
/** The only pages the app opens in the user's browser (documentation links). */
const EXTERNAL_ALLOW_LIST = ['https://github.com/', 'https://www.tensorflow.org/', 'https://js.tensorflow.org/']

let window: BrowserWindow | null = null
let engine: UtilityProcess | null = null
let quitting = false
const replies = new PendingReplies<ResponseMessage>()

function startEngine(): UtilityProcess {
  const child = utilityProcess.fork(join(__dirname, 'engine.js'), [], {
    serviceName: 'Latent Cartographer engine',
    env: { ...process.env, CARTOGRAPHER_DATA_DIR: join(app.getPath('userData'), 'data') }
  })
  child.on('message', (message: ResponseMessage | EventMessage) => {
    if (message?.type === 'response') replies.settle(message.id, message)
    else if (message?.type === 'event') window?.webContents.send(IPC_EVENT_CHANNEL, message)
  })
  child.on('exit', (code) => {
    const reason = `the engine stopped (exit code ${code})`
    replies.failAll((id) => ({ type: 'response', id, ok: false, error: reason }))
    if (engine === child) engine = null
    if (quitting) return
    // A new engine at once, and the window told, so that it re-attaches to what it can.
    engine = startEngine()
    const event: EventMessage<'engine.restarted'> = {
      type: 'event',
      name: 'engine.restarted',
      payload: { reason: `${reason} and was restarted: open the dataset or model again` }
    }
    window?.webContents.send(IPC_EVENT_CHANNEL, event)
  })
  return child
}

function askEngine(message: object): Promise<ResponseMessage> {
  engine ??= startEngine()
  const { id, reply } = replies.issue()
  engine.postMessage({ ...message, id })
  return reply
}

/** Only our own page may talk to the engine (not a frame that navigated elsewhere). */
function trustedSender(url: string | undefined): boolean {
  if (!url) return false
  if (RENDERER_URL && url.startsWith(RENDERER_URL)) return true
  return url.startsWith('file://') && decodeURIComponent(new URL(url).pathname) === RENDERER_FILE.replace(/\\/g, '/')
}

ipcMain.handle(IPC_REQUEST_CHANNEL, async (event, raw: unknown): Promise<ResponseMessage> => {
  const id = requestIdOf(raw)
  try {
    if (!trustedSender(event.senderFrame?.url)) throw new ContractError('request from an unexpected page')
    const request = validateRequest(raw)
    if (MAIN_PROCESS_REQUESTS.includes(request.name)) {
      const choice = await dialog.showOpenDialog(window as BrowserWindow, {
        title: 'Open a dataset folder',
        properties: ['openDirectory']
      })
      return { type: 'response', id, ok: true, result: { path: choice.canceled ? null : (choice.filePaths[0] ?? null) } }
    }
    const response = await askEngine(request)
    return { ...response, id }
  } catch (error) {
    return { type: 'response', id, ok: false, error: describeRequestError(error) }
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
  // No navigation or redirect away from the app and no new windows; allow-listed documentation
  // links open in the user's browser.
  window.webContents.on('will-navigate', (event) => event.preventDefault())
  window.webContents.on('will-redirect', (event) => event.preventDefault())
  window.webContents.setWindowOpenHandler(({ url }) => {
    if (EXTERNAL_ALLOW_LIST.some((prefix) => url.startsWith(prefix))) void shell.openExternal(url)
    return { action: 'deny' }
  })
  if (RENDERER_URL) void window.loadURL(RENDERER_URL)
  else void window.loadFile(RENDERER_FILE)
  window.on('closed', () => (window = null))
}

app.whenReady().then(() => {
  // Deny every permission request (camera, notifications...): the app needs none.
  session.defaultSession.setPermissionRequestHandler((_wc, _permission, callback) => callback(false))
  session.defaultSession.setPermissionCheckHandler(() => false)
  engine = startEngine()
  createWindow()
  app.on('activate', () => {
    if (BrowserWindow.getAllWindows().length === 0) createWindow()
  })
})

app.on('window-all-closed', () => {
  quitting = true
  engine?.kill()
  if (process.platform !== 'darwin') app.quit()
})
