// The bridge: the sandboxed renderer gets one small object, `window.cartographer`, and nothing of
// Node or Electron. Arguments are validated again in the main process, which trusts no renderer.
import { contextBridge, ipcRenderer, webUtils } from 'electron'
import { IPC_EVENT_CHANNEL, IPC_REQUEST_CHANNEL, type EventMessage, type ResponseMessage } from '../common/contract'

let nextId = 1

contextBridge.exposeInMainWorld('cartographer', {
  mode: 'electron',
  // A folder dropped onto the window: its path on disk (sandboxed renderers have no File.path).
  pathForFile: (file: File): string => webUtils.getPathForFile(file),
  request: (name: string, args: unknown): Promise<ResponseMessage> => ipcRenderer.invoke(IPC_REQUEST_CHANNEL, { type: 'request', id: nextId++, name, args }),
  onEvent: (listener: (message: EventMessage) => void): (() => void) => {
    const wrapped = (_event: unknown, message: EventMessage) => listener(message)
    ipcRenderer.on(IPC_EVENT_CHANNEL, wrapped)
    return () => ipcRenderer.removeListener(IPC_EVENT_CHANNEL, wrapped)
  }
})
