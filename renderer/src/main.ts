import { mount } from 'svelte'
import App from './App.svelte'
import './app.css'
import { createClient } from './lib/client'
import { app } from './lib/state.svelte'

app.connect(createClient())
mount(App, { target: document.getElementById('app') as HTMLElement })
