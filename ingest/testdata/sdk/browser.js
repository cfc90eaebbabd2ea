// Opens the page argv[2] in Debian's Chromium (headless, through
// playwright-core), waits until the page says it is done, and prints what
// the page reported as JSON. Exits non-zero on a timeout or a page error.
const { chromium } = require('playwright-core')
const fs = require('fs')
const os = require('os')
const path = require('path')

const [url] = process.argv.slice(2)
const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync']

;(async () => {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tideline-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: flags,
  })
  const logs = []
  try {
    const page = await context.newPage()
    page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`))
    page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`))
    page.on('requestfailed', (r) => logs.push(`requestfailed: ${r.method()} ${r.url()} ${r.failure() && r.failure().errorText}`))
    await page.goto(url)
    await page.waitForFunction(() => window.__tideline_done !== undefined, null, { timeout: 60000 })
    const result = await page.evaluate(() => window.__tideline_done)
    console.log(JSON.stringify({ result, logs }))
    if (result.error) process.exitCode = 1
  } catch (e) {
    console.log(JSON.stringify({ result: { error: String(e) }, logs }))
    process.exitCode = 1
  } finally {
    await context.close()
    fs.rmSync(profile, { recursive: true, force: true })
  }
})()
