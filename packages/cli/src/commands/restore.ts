import { existsSync } from 'node:fs'
import type { Command } from 'commander'
import { isDruError } from '@dru/core'
import type { EventStore as Store } from '@dru/store-sqlite'
import { loadConfig } from '../config.js'
import type { CliContext, CommandModule } from '../context.js'
import { CliError, ExitCode } from '../exit-codes.js'
import { formatCount, renderFields, renderTable } from '../render.js'
import { printJson } from './shared.js'

/** What `dru restore` did to the database (its `--json` output). */
export interface RestoreResult {
  readonly id: string
  readonly path: string
  /** No file was there: an empty database was created (a lost disk). */
  readonly created: boolean
  /** The copy had been closed cleanly by its DRU (a cold backup) before this command. */
  readonly openedClean: boolean
  /** The origin the copy's last process wrote as (null for an empty database). */
  readonly from: string | null
  readonly restorePending: true
  /** Events held per origin (the log is contiguous, so the count is the head seq). */
  readonly origins: ReadonlyArray<{ origin: string; events: number }>
  readonly events: number
}

/** Human rendering of a {@link RestoreResult}. */
export function renderRestore(r: RestoreResult): string {
  const fields: [string, string][] = [
    ['dru', `${r.id} (${r.path})`],
    [
      'database',
      r.created
        ? 'none found: created an empty one (lost disk)'
        : r.from === null
          ? 'empty: no DRU has run on it yet'
          : r.openedClean
            ? 'closed cleanly (cold copy)'
            : 'not closed cleanly (crash or live copy)',
    ],
    ['last origin', `${r.from ?? 'none'} (the next start writes under a fresh incarnation, as every start does)`],
    ['events held', `${formatCount(r.events)} in ${r.origins.length} origins`],
    ['restore pending', 'yes: writes are refused (NOT_WRITABLE) until the old events are back from a peer'],
  ]
  const out = [renderFields(fields), '']
  if (r.origins.length > 0) {
    out.push(
      renderTable(
        ['origin', { header: 'events', align: 'right' }],
        r.origins.map((o) => [o.origin, formatCount(o.events)]),
      ),
      '',
    )
  }
  out.push(
    `next: start the DRU; it refuses writes until caught up (dru wait --for active, then dru status shows writable yes)`,
  )
  return `${out.join('\n')}\n`
}

/**
 * `dru restore`: run offline, after a backup copy (or an empty disk) was put in place.
 * Marks the database restore-pending, so the next start refuses writes until its earlier
 * events are back from a peer and it has verified with one. Forks need no command: every
 * start writes under a fresh incarnation whatever file it opens; this one keeps the
 * application from acting on the older state meanwhile.
 */
export const restoreCommand: CommandModule = {
  register(program: Command, ctx: CliContext) {
    program
      .command('restore')
      .description(
        'prepare a restored (or empty) database offline: writes refused after start until caught up and verified',
      )
      .requiredOption('--config <file>', 'dru.json of the DRU whose database was restored (id, path)')
      .option('--json', 'print the result as JSON')
      .action(async (opts: { config: string; json?: boolean }) => {
        const config = loadConfig(opts.config, ctx.cwd)
        if (config.path === ':memory:')
          throw new CliError(
            ExitCode.CONFIG,
            `${opts.config}: path is ":memory:"; there is nothing on disk to restore`,
            'CONFIG_INVALID',
          )
        // Loaded lazily like the runtime, so inspection commands never load SQLite.
        const { EventStore, MetaKey } = await import('@dru/store-sqlite')
        const created = !existsSync(config.path)
        let store: Store
        try {
          store = EventStore.open({
            path: config.path,
            druId: config.id,
            // Looks and marks only: the next start takes its own fresh incarnation.
            inspect: true,
            ...(config.durability === 'process' || config.durability === 'machine'
              ? { durability: config.durability }
              : {}),
          })
        } catch (err) {
          if (isDruError(err, 'DB_LOCKED')) {
            throw new CliError(
              ExitCode.REFUSED,
              `${config.path} is open by a running DRU; stop it first (dru restore works on a stopped DRU)`,
              'DB_LOCKED',
            )
          }
          if (isDruError(err, 'CONFIG_INVALID'))
            throw new CliError(ExitCode.CONFIG, `${opts.config}: ${err.message}`, err.code)
          throw err
        }
        try {
          const openedClean = store.openedClean
          // The last process's origin (none for a database no DRU has run on).
          const from = created || store.getMeta(MetaKey.INCARNATION) === undefined ? null : store.origin
          store.setMeta(MetaKey.RESTORE_PENDING, 1)
          const vv = store.vv() as Record<string, number>
          const origins = Object.entries(vv)
            .map(([origin, events]) => ({ origin, events }))
            .sort((a, b) => (a.origin < b.origin ? -1 : 1))
          const result: RestoreResult = {
            id: config.id,
            path: config.path,
            created,
            openedClean: created ? false : openedClean,
            from,
            restorePending: true,
            origins,
            events: origins.reduce((n, o) => n + o.events, 0),
          }
          if (opts.json) printJson(ctx, result)
          else ctx.stdout(renderRestore(result))
        } finally {
          store.close()
        }
      })
  },
}
