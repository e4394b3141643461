#!/usr/bin/env node
// `npx cartographer`: runs the built CLI (built by `npm ci` through the prepare script).
const { existsSync } = require('node:fs')
const { join } = require('node:path')
const built = join(__dirname, '..', 'out', 'main', 'cli.js')
if (!existsSync(built)) {
  console.error('cartographer: the app is not built yet; run `npm run build` in the project folder first')
  process.exit(1)
}
require(built)
  .main(process.argv.slice(2))
  .then(
    (code) => process.exit(code),
    (error) => {
      console.error(`\ncartographer: ${error.message}`)
      process.exit(1)
    }
  )
