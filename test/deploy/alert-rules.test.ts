import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { afterEach, describe, expect, it } from 'vitest'
import { openDru, runtimeOf, type Dru } from '@dru/node'
import { generateKeys } from '@dru/sync'
import { druNamesIn, exportedNames, hasPromtool, headingAnchors, inCi } from './prometheus.js'

// The Prometheus alert rules shipped in deploy/prometheus: valid for promtool, firing as their
// unit tests say (each alert at least once, and silent on a healthy series), naming only metrics
// a DRU exports, each pointing at a runbook section that exists; and a live scrape of a DRU
// that passes `promtool check metrics`. Without promtool the promtool checks skip on a
// developer machine but fail under CI=true (.ci/run installs it), so they cannot silently stop
// running.

const DIR = fileURLToPath(new URL('../../deploy/prometheus/', import.meta.url))
const RULES = `${DIR}dru-alerts.yml`
const RUNBOOK = fileURLToPath(new URL('../../docs/RUNBOOK.md', import.meta.url))
const rulesText = readFileSync(RULES, 'utf8')
const unitText = readFileSync(`${DIR}dru-alerts.test.yml`, 'utf8')

const ALERTS = [
  'DruIsolated',
  'DruNotReady',
  'DruPeerDisconnected',
  'DruPeerLagEvents',
  'DruPeerLagSeconds',
  'DruForkDetected',
  'DruPeerQuarantined',
  'DruIdentityConflict',
  'DruProtocolViolations',
  'DruClockSkew',
  'DruStaleCopyDetected',
  'DruConflictsOpenTooLong',
  'DruDocumentsIsolated',
  'DruChangesRejected',
  'DruCompactionFloorHeldBack',
  'DruInboxDeadLetters',
  'DruInboxHandlerFailing',
  'DruInboxHandlerNotRegistered',
]

/** Each rule's text, from its `- alert:` line to the next. */
function ruleBlocks(): Map<string, string> {
  const blocks = new Map<string, string>()
  for (const part of rulesText.split(/^\s+- alert: /m).slice(1))
    blocks.set(part.slice(0, part.indexOf('\n')).trim(), part)
  return blocks
}

describe('deploy/prometheus/dru-alerts.yml', () => {
  it('promtool is installed wherever CI runs', () => {
    if (inCi) expect(hasPromtool, 'promtool is missing: .ci/run installs it (apt-get install prometheus)').toBe(true)
  })

  it.skipIf(!hasPromtool)('passes promtool check rules', () => {
    const out = execFileSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' })
    expect(out).toMatch(new RegExp(`SUCCESS: ${ALERTS.length} rules found`))
  })

  it.skipIf(!hasPromtool)('fires as its unit tests say (promtool test rules)', () => {
    const out = execFileSync('promtool', ['test', 'rules', 'dru-alerts.test.yml'], { cwd: DIR, encoding: 'utf8' })
    expect(out).toMatch(/SUCCESS/)
  })

  it('has exactly the alerts listed here, each unit-tested firing and not firing', () => {
    expect([...ruleBlocks().keys()]).toEqual(ALERTS)
    for (const name of ALERTS) {
      expect(unitText, `${name} never expected to fire`).toMatch(
        new RegExp(`alertname: ${name}\\n\\s+exp_alerts:\\n\\s+- exp_labels:`),
      )
      expect(unitText, `${name} never expected silent`).toMatch(
        new RegExp(`alertname: ${name}\\n\\s+exp_alerts: \\[\\]`),
      )
    }
  })

  it('gives each alert a severity, a summary, a description and a runbook section that exists', () => {
    const anchors = headingAnchors(readFileSync(RUNBOOK, 'utf8'))
    for (const [name, block] of ruleBlocks()) {
      expect(block, name).toMatch(/\n\s+severity: (page|warning)\n/)
      expect(block, name).toMatch(/\n\s+summary: /)
      expect(block, name).toMatch(/\n\s+description: /)
      const runbook = /\n\s+runbook: docs\/RUNBOOK\.md#([a-z0-9-]+)\n/.exec(block)
      expect(runbook, `${name} has no runbook annotation`).not.toBeNull()
      expect(anchors.has(runbook![1]!), `${name}: docs/RUNBOOK.md has no section #${runbook![1]}`).toBe(true)
    }
  })

  it('names only metrics a DRU exports', async () => {
    const names = await exportedNames()
    const used = druNamesIn(rulesText)
    expect(used).toEqual([
      'dru_changes_rejected',
      'dru_clock_skew_alarms_total',
      'dru_compaction_floor_events',
      'dru_compaction_held_back_events',
      'dru_conflicts_open',
      'dru_documents_isolated',
      'dru_forks_total',
      'dru_identity_conflicts_total',
      'dru_inbox_dead_letters',
      'dru_inbox_handler_failures_total',
      'dru_inbox_handler_registered',
      'dru_inbox_pending',
      'dru_lifecycle_state',
      'dru_peer_connected',
      'dru_peer_lag_events',
      'dru_peer_lag_seconds',
      'dru_protocol_violations_total',
      'dru_quarantines_total',
      'dru_stale_copy_detected_total',
    ])
    for (const name of used) expect(names.has(name), name).toBe(true)
  })
})

describe('a live scrape of a DRU', () => {
  const open: Dru[] = []
  afterEach(async () => {
    while (open.length) await open.pop()!.close()
  })

  // Two DRUs in this process: `a` (admin API, peer of `b`) writes and waits for b's acks, and
  // ingests a change of b's that its event handler refuses, so the per-peer, inbox and
  // histogram series are all in the scrape. No lint exceptions: promtool must print nothing.
  it.skipIf(!hasPromtool)('passes promtool check metrics with no finding', async () => {
    const keys = { a: generateKeys(), b: generateKeys() }
    const publicKeys = { a: keys.a.publicKey, b: keys.b.publicKey }
    const secret = 'alert-rules-scrape-secret-0123'
    const b = await openDru({
      id: 'b',
      path: ':memory:',
      listen: { host: '127.0.0.1', port: 0 },
      secret,
      keys: { privateKey: keys.b.privateKey, publicKeys },
      allowWritesWhileRestoring: true,
    })
    open.push(b)
    const a = await openDru({
      id: 'a',
      path: ':memory:',
      admin: { host: '127.0.0.1', port: 0 },
      peers: [{ id: 'b', url: `ws://127.0.0.1:${runtimeOf(b).network!.sync.port}` }],
      secret,
      keys: { privateKey: keys.a.privateKey, publicKeys },
      allowWritesWhileRestoring: true,
    })
    open.push(a)
    a.onEvent('audit', (event) => {
      if (event.docId === 'poison') throw new Error('audit refuses poison')
    })
    const fromB = new Promise<void>((resolve) => a.subscribe('poison', () => resolve()))
    for (let i = 0; i < 3; i++) {
      await a.change(
        `order-${i}`,
        (doc: Record<string, unknown>) => {
          doc.status = 'new'
        },
        { acks: 1, timeoutMs: 30_000 },
      )
    }
    await b.change('poison', (doc: Record<string, unknown>) => {
      doc.x = 1
    })
    await fromB

    const scrape = await (await fetch(`${runtimeOf(a).admin!.url}/metrics`)).text()
    expect(scrape).toMatch(/^dru_peer_connected\{peer="b",dru="a"\} 1$/m)
    expect(scrape).toMatch(/^dru_inbox_handler_failures_total\{handler="audit",dru="a"\} [1-9]/m)
    expect(scrape).toMatch(/^dru_commit_latency_seconds_bucket\{/m)
    const check = spawnSync('promtool', ['check', 'metrics'], { input: scrape, encoding: 'utf8' })
    expect({ status: check.status, stdout: check.stdout, stderr: check.stderr }).toEqual({
      status: 0,
      stdout: '',
      stderr: '',
    })
  })
})
