import { describe, expect, it } from 'vitest'
import { isDruError } from '@dru/core'
import { openDru, validateConfig } from '@dru/node'
import { syncTuning } from '../src/network.js'

const good = { id: 'eu-west-1', path: ':memory:' }

/** Each row: a bad value for one field; opening must fail with CONFIG_INVALID naming it. */
const BAD: Array<[string, unknown]> = [
  ['id', undefined],
  ['id', ''],
  ['id', 'has space'],
  ['id', 42],
  ['path', undefined],
  ['path', ''],
  ['path', 7],
  ['durability', 'disk'],
  ['cache', 5],
  ['cache', { maxDocs: 0 }],
  ['cache', { maxDocs: 1.5 }],
  ['cache', { maxBytes: -1 }],
  ['cache', { maxItems: 3 }],
  ['conflictPolicy', 'random'],
  ['conflictPolicy', { priority: 'eu-west-1' }],
  ['conflictPolicy', { priority: [1] }],
  ['now', 123],
  ['maxClockSkewMs', 0],
  ['sync', { reconnectMaxMs: -1 }],
  ['sync', { reconnectMs: 5 }],
  ['sync', { forwardWindowBytes: 0 }],
  ['sync', { reconnectBaseMs: 0 }],
  ['sync', { heartbeatMs: 0 }],
  ['sync', { heartbeatTimeoutMs: 0 }],
  ['sync', { reconnectMaxMs: 0 }],
  ['sync', { forwardWindowBytes: 1.5 }],
  // Above Node's longest timer (2^31 − 1 ms) a delay fires after 1 ms: a down peer redialled every millisecond.
  ['sync', { reconnectMaxMs: 2 ** 31 }],
  ['sync', { reconnectBaseMs: 30 * 86_400_000 }],
  ['sync', { heartbeatTimeoutMs: 2 ** 31 }],
  ['ramp', { startPercent: 150 }],
  ['maxClockSkewMs', 'soon'],
  ['listenn', { port: 1 }],
  ['inbox', { retries: 3 }],
  ['inbox', { backoffMs: 0 }],
  ['inbox', { delayedRetries: 1.5 }],
  ['inbox', { autoRetry: 'no' }],
  ['inbox', []],
]

describe('config validation at open', () => {
  for (const [field, value] of BAD) {
    it(`${field} = ${JSON.stringify(value) ?? 'missing'} → CONFIG_INVALID naming ${field}`, async () => {
      const config = { ...good, [field]: value } as Record<string, unknown>
      if (value === undefined) delete config[field]
      let caught: unknown
      try {
        await openDru(config as never)
      } catch (err) {
        caught = err
      }
      expect(isDruError(caught, 'CONFIG_INVALID'), String(caught)).toBe(true)
      expect((caught as Error).message).toContain(`"${field}"`)
      expect((caught as { details: { field: string } }).details.field).toBe(field)
    })
  }

  it('accepts every documented field', async () => {
    const dru = await openDru({
      ...good,
      durability: 'process',
      cache: { maxDocs: 10, maxBytes: 1 << 20 },
      conflictPolicy: { priority: ['eu-west-1'] },
      now: () => 1_700_000_000_000,
      maxClockSkewMs: 5000,
      ramp: { startPercent: 25, windowMs: 60_000 },
      inbox: {
        immediateRetries: 0,
        delayedRetries: 3,
        backoffMs: 500,
        maxBackoffMs: 10_000,
        batch: 10,
        autoRetry: true,
      },
    })
    await dru.close()
    expect(() =>
      validateConfig({
        ...good,
        sync: { reconnectBaseMs: 50, reconnectMaxMs: 2_000, slackEvents: 0, forwardWindowBytes: 65_536 },
      }),
    ).not.toThrow()
    // The longest delay a timer holds is accepted.
    expect(() =>
      validateConfig({ ...good, sync: { reconnectMaxMs: 2 ** 31 - 1, heartbeatTimeoutMs: 2 ** 31 - 1 } }),
    ).not.toThrow()
    expect(() => validateConfig(null)).toThrow(/config must be an object/)
  })
})

describe('the sync config reaches the sync node', () => {
  it('passes every sync-node field, and only those, leaving the rest to the defaults', () => {
    expect(syncTuning(undefined)).toEqual({})
    expect(syncTuning({ startupGraceMs: 9, slackEvents: 3 })).toEqual({})
    expect(
      syncTuning({
        heartbeatMs: 200,
        heartbeatTimeoutMs: 900,
        reconnectBaseMs: 50,
        reconnectMaxMs: 2_000,
        forwardWindowBytes: 65_536,
        rates: { framesPerSecond: 10 },
        listenerCaps: { maxConnections: 4 },
      }),
    ).toEqual({
      heartbeatMs: 200,
      heartbeatTimeoutMs: 900,
      backoff: { baseMs: 50, maxMs: 2_000 },
      forwardWindowBytes: 65_536,
      rates: { framesPerSecond: 10 },
      listenerCaps: { maxConnections: 4 },
    })
    expect(syncTuning({ reconnectMaxMs: 5 })).toEqual({ backoff: { maxMs: 5 } })
  })
})
