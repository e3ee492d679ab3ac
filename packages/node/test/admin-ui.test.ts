/// <reference lib="dom" />
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterEach, describe, expect, it } from 'vitest'
import { generateKeys } from '@dru/sync'
import { openDru, runtimeOf, type Dru } from '../src/index.js'

// The dashboard in a real browser: three DRUs, one cut off, writes on both sides, then a
// slowed heal. The page of the cut-off DRU must show it isolated, catching up, and active,
// with lags, gaps by origin, reconciliation progress and the conflict, and must never log
// an error or trip its Content-Security-Policy. Headless Chromium from Debian's package
// (.ci/run installs it): under CI a missing browser fails this test instead of skipping it.

const CHROMIUM = process.env.DRU_TEST_CHROMIUM ?? '/usr/bin/chromium'
const available = existsSync(CHROMIUM)
const runIt = available || process.env.CI ? it : it.skip

/** Screenshots land here (not committed: test-results/ is ignored). */
const SCREENSHOTS = fileURLToPath(new URL('../../../test-results/admin-ui/', import.meta.url))

const TOKEN = 'dashboard-test-token-0123456789'
const SECRET = 'dashboard-test-secret-0123456789'
/** Events the isolated DRU writes, and those the others write meanwhile. */
const ISOLATED_WRITES = 40
const MAJORITY_WRITES = 300
/** The healed links carry this many bytes a second, so the catch-up lasts a few polls. */
const SLOW_BYTES_PER_SECOND = 400_000
/** Bytes a slowed link holds before it stops reading from the sender. */
const QUEUE_BYTES = 64 * 1024
/** Generous: a shared 2-core machine. Waits end as soon as the page shows what is expected. */
const SHOW_TIMEOUT_MS = 30_000

const cleanups: Array<() => unknown> = []
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!()
})

/**
 * One directed loopback link between two DRUs, as a region's network carries it: `cut()`
 * resets its connections and refuses new ones, `heal()` lets them through again, at
 * `bytesPerSecond` per direction when set (a congested link after a heal).
 */
class Link {
  target = 0
  bytesPerSecond = Infinity
  #open = true
  readonly #server: net.Server
  readonly #sockets = new Set<net.Socket>()
  readonly #timer: NodeJS.Timeout
  readonly #queues: Array<{ from: net.Socket; to: net.Socket; chunks: Buffer[] }> = []

  private constructor(server: net.Server) {
    this.#server = server
    // A token bucket refilled every 50 ms; the bytes wait in order, nothing is lost.
    this.#timer = setInterval(() => this.#drain(this.bytesPerSecond / 20), 50)
  }

  static async start(): Promise<Link> {
    const server = net.createServer()
    const link = new Link(server)
    server.on('connection', (client) => link.#accept(client))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    return link
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.#server.address() as net.AddressInfo).port}`
  }

  cut(): void {
    this.#open = false
    for (const s of this.#sockets) s.resetAndDestroy()
    this.#sockets.clear()
    this.#queues.length = 0
  }

  heal(bytesPerSecond = Infinity): void {
    this.bytesPerSecond = bytesPerSecond
    this.#open = true
  }

  #accept(client: net.Socket): void {
    if (!this.#open || this.target === 0) return void client.resetAndDestroy()
    const upstream = net.connect(this.target, '127.0.0.1')
    const pairs: Array<[net.Socket, net.Socket]> = [
      [client, upstream],
      [upstream, client],
    ]
    for (const [from, to] of pairs) {
      this.#sockets.add(from)
      const queue = { from, to, chunks: [] as Buffer[] }
      this.#queues.push(queue)
      from.on('data', (d: Buffer) => {
        if (this.bytesPerSecond === Infinity && queue.chunks.length === 0) return void to.write(d)
        queue.chunks.push(d)
        // Back-pressure, as a congested network gives it: the sender's own buffers fill up.
        if (queue.chunks.reduce((n, c) => n + c.length, 0) > QUEUE_BYTES) from.pause()
      })
      from.on('error', () => undefined)
      from.on('close', () => {
        this.#sockets.delete(from)
        this.#queues.splice(this.#queues.indexOf(queue) >>> 0, 1)
        client.destroy()
        upstream.destroy()
      })
    }
  }

  #drain(budget: number): void {
    for (const q of this.#queues) {
      let left = budget
      while (q.chunks.length > 0 && left > 0 && !q.to.destroyed) {
        const chunk = q.chunks[0]!
        const part = chunk.subarray(0, Math.min(chunk.length, Math.ceil(left)))
        q.to.write(part)
        left -= part.length
        if (part.length === chunk.length) q.chunks.shift()
        else q.chunks[0] = chunk.subarray(part.length)
      }
      if (q.chunks.length === 0 && q.from.isPaused()) q.from.resume()
    }
  }

  async close(): Promise<void> {
    this.cut()
    clearInterval(this.#timer)
    await new Promise<void>((resolve) => this.#server.close(() => resolve()))
  }
}

/** Three DRUs a, b, c; every directed link runs through a {@link Link}. Only c's admin API has a token. */
async function startCluster(): Promise<{
  drus: Record<'a' | 'b' | 'c', Dru>
  links: Array<{ from: string; to: string; link: Link }>
}> {
  const ids = ['a', 'b', 'c'] as const
  const keys = Object.fromEntries(ids.map((id) => [id, generateKeys()]))
  const publicKeys = Object.fromEntries(ids.map((id) => [id, keys[id]!.publicKey]))
  const links: Array<{ from: string; to: string; link: Link }> = []
  for (const from of ids) for (const to of ids) if (from !== to) links.push({ from, to, link: await Link.start() })
  cleanups.push(() => Promise.all(links.map((l) => l.link.close())))
  const drus = {} as Record<'a' | 'b' | 'c', Dru>
  for (const id of ids) {
    const dru = await openDru({
      id,
      path: ':memory:',
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0, ...(id === 'c' ? { token: TOKEN } : {}) },
      peers: links.filter((l) => l.from === id).map((l) => ({ id: l.to, url: l.link.url })),
      secret: SECRET,
      keys: { privateKey: keys[id]!.privateKey, publicKeys },
      // A slowed link queues heartbeats behind the backlog; a cut resets the sockets, so it is seen at once anyway.
      sync: { heartbeatMs: 200, heartbeatTimeoutMs: 20_000, startupGraceMs: 500 },
      allowWritesWhileRestoring: true,
      // The page's conflict panel and its "keep" action need an open conflict.
      conflictPolicy: 'manual',
    })
    cleanups.push(() => dru.close())
    drus[id] = dru
    for (const l of links) if (l.to === id) l.link.target = runtimeOf(dru).network!.sync.port
  }
  return { drus, links }
}

async function waitFor(what: string, check: () => boolean, timeoutMs = SHOW_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** Text of the first element matching `selector` inside peer `peer`'s card. */
function peerText(page: Page, peer: string, selector: string): Promise<string> {
  return page.locator(`[data-peer="${peer}"].peer ${selector}`).first().innerText()
}

describe('the admin dashboard (GET /ui) in headless Chromium', () => {
  runIt(
    'shows the cut-off DRU isolated, catching up and active: states, lags, gaps by origin, progress, conflicts; resolves with the token',
    { timeout: 180_000 },
    async () => {
      if (!available) throw new Error(`${CHROMIUM} is missing: CI must install chromium (.ci/run does)`)
      const { drus, links } = await startCluster()
      const { a, c } = drus
      await waitFor('all three active', () => Object.values(drus).every((d) => d.state() === 'active'))
      // A document both sides know, so the writes during the partition touch the same field.
      await a.change('order-7', (d: Record<string, unknown>) => (d.status = 'new'))
      await waitFor('order-7 on c', () => (c.get('order-7') as { status?: string } | undefined)?.status === 'new')

      const browser: Browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--no-sandbox', '--disable-gpu'],
      })
      cleanups.push(() => browser.close())
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
      const problems: string[] = []
      page.on('console', (m) => {
        if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`)
      })
      page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
      // Injected by the browser itself, so the page's CSP does not apply to this listener.
      await page.addInitScript(() => {
        document.addEventListener('securitypolicyviolation', (e) =>
          console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`),
        )
      })
      mkdirSync(SCREENSHOTS, { recursive: true })
      console.log(`dashboard screenshots: ${SCREENSHOTS}`)

      const ui = `${runtimeOf(c).admin!.url}/ui`
      const response = await page.goto(ui)
      expect(response!.status()).toBe(200)
      expect(response!.headers()['content-security-policy']).toMatch(/^default-src 'self'/)
      // The configured poll interval keeps a change on screen within a second.
      expect(Number(await page.locator('body').getAttribute('data-poll-ms'))).toBeLessThanOrEqual(500)
      await expect.poll(() => page.locator('#self-state').innerText(), { timeout: SHOW_TIMEOUT_MS }).toBe('active')
      await expect
        .poll(() => page.locator('.peer[data-connected="true"]').count(), { timeout: SHOW_TIMEOUT_MS })
        .toBe(2)
      expect(await page.locator('#self-id').innerText()).toBe('c')
      expect(await page.locator('#self-since').innerText()).toMatch(/^since \d\d:\d\d:\d\d \(\d+ s ago\)$/)
      // Every known DRU's own lifecycle state, as it announces it in its heartbeats.
      for (const peer of ['a', 'b'])
        await expect
          .poll(() => peerText(page, peer, '.peer-lifecycle'), { timeout: SHOW_TIMEOUT_MS })
          .toMatch(/^its state active since \d\d:\d\d:\d\d/)

      // ---- 1. c is cut off; both sides write -----------------------------------------------
      for (const l of links) if (l.from === 'c' || l.to === 'c') l.link.cut()
      await waitFor('c isolated', () => c.state() === 'isolated')
      await c.change('order-7', (d: Record<string, unknown>) => (d.status = 'cancelled'))
      for (let i = 1; i < ISOLATED_WRITES; i++) await c.change(`c-${i}`, (d: Record<string, unknown>) => (d.n = i))
      await a.change('order-7', (d: Record<string, unknown>) => (d.status = 'shipped'))
      for (let i = 1; i < MAJORITY_WRITES; i++) {
        // An in-memory commit resolves without I/O: let the admin servers answer between writes.
        if (i % 10 === 0) await new Promise((r) => setImmediate(r))
        await a.change(`a-${i}`, (d: Record<string, unknown>) => {
          d.n = i
          // Incompressible, so the backlog spans several sync batches (1 MiB each) and arrives in steps.
          d.pad = new Uint8Array(randomBytes(4096))
        })
      }

      await expect
        .poll(() => page.locator('#self-state').getAttribute('data-state'), { timeout: SHOW_TIMEOUT_MS })
        .toBe('isolated')
      await expect
        .poll(() => peerText(page, 'a', '.lag-out-events'), { timeout: SHOW_TIMEOUT_MS })
        .toBe(String(ISOLATED_WRITES))
      for (const peer of ['a', 'b']) {
        expect(await peerText(page, peer, '.peer-connection')).toBe('disconnected')
        expect(await peerText(page, peer, '.peer-since')).toMatch(/^disconnected since \d\d:\d\d:\d\d/)
        expect(await peerText(page, peer, '.peer-last-seen')).toMatch(/^last seen \d\d:\d\d:\d\d/)
        expect(await peerText(page, peer, '.peer-membership')).toBe('membership: member')
        expect(await peerText(page, peer, '.peer-lifecycle')).toMatch(/^its last known state \w[\w-]* since /)
        // c lacks a's writes but cannot know it: the count is what a last reported.
        expect(await peerText(page, peer, '.lag-in-events')).toBe('0 (as last reported)')
      }
      const ownOrigin = c.store.origin
      const isolatedGap = page.locator(`[data-peer="a"].peer .gap-row[data-origin="${ownOrigin}"]`)
      expect(await isolatedGap.locator('.gap-they-lack').innerText()).toBe(String(ISOLATED_WRITES))
      expect(await isolatedGap.locator('.gap-we-lack').innerText()).toBe('0')
      expect(Number(await peerText(page, 'a', '.lag-out-seconds'))).toBeGreaterThan(0)
      expect(await page.locator('.peer .spark polyline').count()).toBe(2 * 2 * 2)
      expect(await page.locator('#conflicts-empty').isVisible()).toBe(true)

      // One more write: the page shows it by the second poll that starts after it (≤ 1 s at 500 ms).
      const pollsBefore = Number(await page.locator('body').getAttribute('data-polls'))
      await c.change('c-extra', (d: Record<string, unknown>) => (d.n = 0))
      await page.waitForFunction(
        (want) => document.querySelector('[data-peer="a"].peer .lag-out-events')?.textContent === want,
        String(ISOLATED_WRITES + 1),
        { polling: 'raf', timeout: SHOW_TIMEOUT_MS },
      )
      const pollsAfter = Number(await page.locator('body').getAttribute('data-polls'))
      expect(pollsAfter - pollsBefore).toBeLessThanOrEqual(2)
      await page.screenshot({ path: join(SCREENSHOTS, '1-isolated.png'), fullPage: true })

      // ---- 2. the heal, over slow links ----------------------------------------------------
      for (const l of links) if (l.from === 'c' || l.to === 'c') l.link.heal(SLOW_BYTES_PER_SECOND)
      await expect
        .poll(() => page.locator('#self-state').getAttribute('data-state'), { timeout: SHOW_TIMEOUT_MS })
        .toBe('catching-up')
      await page.locator('#reconciliation').waitFor({ state: 'visible', timeout: SHOW_TIMEOUT_MS })
      // Mid-way, read in one go from a single render: some of a's events received, more
      // still lacking (by origin, against a peer), the bar between its ends.
      const midway = await (
        await page.waitForFunction(
          (origin) => {
            const summary = document.getElementById('reconciliation-summary')?.textContent ?? ''
            const m = /received (\d+) of (\d+) events/.exec(summary)
            if (m === null || !(Number(m[1]) > 0 && Number(m[1]) < Number(m[2]))) return false
            const lacking = Array.from(
              document.querySelectorAll(`.peer .gap-row[data-origin="${origin}"] .gap-we-lack`),
              (td) => Number(td.textContent),
            )
            return {
              state: document.getElementById('self-state')?.textContent,
              summary,
              progress: (document.getElementById('reconciliation-progress') as HTMLProgressElement).value,
              lacking: Math.max(0, ...lacking),
              connected: document.querySelectorAll('.peer[data-connected="true"]').length,
            }
          },
          a.store.origin,
          { timeout: SHOW_TIMEOUT_MS },
        )
      ).jsonValue()
      if (midway === false) throw new Error('unreachable: waitForFunction returns a truthy value')
      expect(midway).toMatchObject({ state: 'catching-up' })
      expect(midway.summary).toMatch(
        /^catching-up since the heal at \d\d:\d\d:\d\d: received \d+ of \d+ events, sent \d+ of \d+ \(\d+%\)$/,
      )
      expect(midway.progress).toBeGreaterThan(0)
      expect(midway.progress).toBeLessThan(1)
      expect(midway.lacking).toBeGreaterThan(0)
      expect(midway.connected).toBeGreaterThan(0)
      await page.screenshot({ path: join(SCREENSHOTS, '2-catching-up.png'), fullPage: true })

      // ---- 3. caught up: active, nothing missing, the conflict on screen -------------------
      for (const l of links) l.link.bytesPerSecond = Infinity
      // c's application keeps writing, as a live region does (a silent cluster reaches active
      // too since the refresh probe: packages/node/test/heal-lifecycle.test.ts).
      const writer = setInterval(
        () => void c.change('c-heartbeat', (d: Record<string, unknown>) => (d.at = Date.now())).catch(() => undefined),
        300,
      )
      cleanups.push(() => clearInterval(writer))
      await expect
        .poll(() => page.locator('#self-state').getAttribute('data-state'), { timeout: SHOW_TIMEOUT_MS })
        .toBe('active')
      clearInterval(writer)
      await expect
        .poll(() => page.locator('#reconciliation').getAttribute('data-done'), { timeout: SHOW_TIMEOUT_MS })
        .toBe('true')
      expect(await page.locator('#reconciliation-summary').innerText()).toMatch(
        /^caught up at \d\d:\d\d:\d\d, \d+ s after the heal: received \d+ events, sent \d+$/,
      )
      expect(await page.locator('#reconciliation-progress').evaluate((el) => (el as HTMLProgressElement).value)).toBe(1)
      for (const peer of ['a', 'b']) {
        await expect
          .poll(() => peerText(page, peer, '.gaps-none'), { timeout: SHOW_TIMEOUT_MS })
          .toBe('nothing missing either way')
        expect(await peerText(page, peer, '.peer-connection')).toBe('connected')
        await expect
          .poll(() => peerText(page, peer, '.peer-lifecycle'), { timeout: SHOW_TIMEOUT_MS })
          .toMatch(/^its state active since /)
        expect(await peerText(page, peer, '.lag-in-events')).toBe('0')
        expect(await peerText(page, peer, '.lag-out-events')).toBe('0')
        // Seconds count from acknowledgements, and c keeps writing: an ack may trail the
        // newest write by a heartbeat, so only the format is certain here.
        expect(await peerText(page, peer, '.lag-out-seconds')).toMatch(/^\d+(\.\d)?$/)
      }
      const row = page.locator('tr.conflict').first()
      await row.waitFor({ state: 'visible', timeout: SHOW_TIMEOUT_MS })
      expect(await page.locator('tr.conflict').count()).toBe(1)
      expect(await row.locator('.conflict-doc').innerText()).toBe('order-7')
      expect(await row.locator('.conflict-path').innerText()).toBe('status')
      const values = await row
        .locator('.conflict-value')
        .evaluateAll((items) =>
          items.map((li) => [li.getAttribute('data-writer'), li.querySelector('.value')?.textContent]),
        )
      expect(values.sort()).toEqual([
        ['a', '"shipped"'],
        ['c', '"cancelled"'],
      ])
      expect(await page.locator('#self-conflicts').innerText()).toBe('1')
      await page.screenshot({ path: join(SCREENSHOTS, '3-active.png'), fullPage: true })

      // ---- 4. resolving needs the token; with it, the conflict goes ------------------------
      const keepShipped = row.locator('.conflict-value[data-writer="a"] button.resolve')
      await keepShipped.click()
      await expect
        .poll(() => page.locator('#resolve-result').innerText(), { timeout: SHOW_TIMEOUT_MS })
        .toMatch(/^resolving needs the admin token/)
      // The browser reports the refused request itself; that one error is expected.
      expect(problems.splice(0)).toEqual([expect.stringMatching(/console error: Failed to load resource: .*401/)])
      expect(c.conflicts.list('open')).toHaveLength(1)
      await page.locator('#token').fill(TOKEN)
      await page.locator('#token-save').click()
      expect(await page.locator('#token-state').innerText()).toBe('a token is set for this tab')
      expect(await page.evaluate(() => sessionStorage.getItem('dru-admin-token'))).toBe(TOKEN)
      await keepShipped.click()
      await expect
        .poll(() => page.locator('#resolve-result').innerText(), { timeout: SHOW_TIMEOUT_MS })
        .toMatch(/^conflict \d+ resolved/)
      await expect.poll(() => page.locator('tr.conflict').count(), { timeout: SHOW_TIMEOUT_MS }).toBe(0)
      expect(c.conflicts.list('open')).toHaveLength(0)
      expect(c.get('order-7')).toMatchObject({ status: 'shipped' })

      expect(problems).toEqual([])
    },
  )
})
