/**
 * Human output: aligned tables and small formatters. Pure functions returning strings,
 * so commands stay thin and tests can check exact text.
 */

/** Column alignment; numbers read best right-aligned. */
export type Align = 'left' | 'right'

/** A column of {@link renderTable}. */
export interface Column {
  readonly header: string
  readonly align?: Align
}

/**
 * Renders rows under upper-case headers, columns separated by two spaces, trailing
 * spaces trimmed. Cells are printed as given (use the formatters below).
 */
export function renderTable(columns: readonly (Column | string)[], rows: readonly (readonly string[])[]): string {
  const cols = columns.map((c) => (typeof c === 'string' ? { header: c } : c))
  const widths = cols.map((c, i) => Math.max(c.header.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: readonly string[]) =>
    cols
      .map((c, i) => {
        const cell = cells[i] ?? ''
        const w = widths[i]!
        return c.align === 'right' ? cell.padStart(w) : cell.padEnd(w)
      })
      .join('  ')
      .trimEnd()
  return [line(cols.map((c) => c.header.toUpperCase())), ...rows.map(line)].join('\n')
}

/** `label  value` lines with labels padded to one width. */
export function renderFields(fields: readonly (readonly [string, string])[]): string {
  const w = Math.max(0, ...fields.map(([k]) => k.length))
  return fields.map(([k, v]) => `${k.padEnd(w)}  ${v}`.trimEnd()).join('\n')
}

/** 12345 -> `12,345`; non-finite -> `-`. */
export function formatCount(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '-'
  return Math.round(n).toLocaleString('en-US')
}

/** Seconds with one decimal below a minute, else `1m 05s` / `2h 03m`; null -> `-`. */
export function formatSeconds(s: number | null | undefined): string {
  if (s === null || s === undefined || !Number.isFinite(s)) return '-'
  if (s < 60) return `${s.toFixed(1)}s`
  const total = Math.round(s)
  const h = Math.floor(total / 3600)
  const m = Math.floor((total % 3600) / 60)
  const sec = total % 60
  return h > 0 ? `${h}h ${String(m).padStart(2, '0')}m` : `${m}m ${String(sec).padStart(2, '0')}s`
}

/** `yes` / `no` / `-`. */
export function formatBool(b: boolean | null | undefined): string {
  return b === null || b === undefined ? '-' : b ? 'yes' : 'no'
}

/** Compact JSON for a value inside a table cell, shortened to `max` characters. */
export function formatValue(v: unknown, max = 40): string {
  let s: string
  try {
    s = JSON.stringify(v) ?? 'undefined'
  } catch {
    s = String(v)
  }
  return s.length > max ? `${s.slice(0, max - 1)}…` : s
}

/** A document path as `items[2].qty`. */
export function formatPath(path: readonly (string | number)[] | undefined): string {
  if (!path || path.length === 0) return '(root)'
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('')
}

/** ms since epoch -> ISO time without milliseconds; invalid -> `-`. */
export function formatTime(ms: number | string | null | undefined): string {
  if (ms === null || ms === undefined) return '-'
  const d = new Date(ms)
  return Number.isNaN(d.getTime()) ? '-' : d.toISOString().replace(/\.\d{3}Z$/, 'Z')
}

/** A version vector as `a/1:3 b/2:7` (sorted), or `(empty)`. */
export function formatVv(vv: Readonly<Record<string, number>> | undefined): string {
  const keys = Object.keys(vv ?? {}).sort()
  return keys.length === 0 ? '(empty)' : keys.map((k) => `${k}:${vv![k]}`).join(' ')
}
