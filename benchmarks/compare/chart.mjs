// A small hand-written SVG line chart: one line per system, a marker per point with its
// min–max range as a vertical bar; log-scale y when the values span more than 20×.
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#7f7f7f', '#9467bd']
const DASH = ['', '6 3', '2 3', '8 3 2 3', '']

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')

function niceTicks(lo, hi, count = 5) {
  const span = hi - lo || 1
  const step0 = span / count
  const mag = 10 ** Math.floor(Math.log10(step0))
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) ?? 10 * mag
  const ticks = []
  // From the first tick at or below lo to the first at or above hi, so the data fits.
  for (let v = Math.floor(lo / step) * step; v < hi + step; v += step) ticks.push(Number(v.toPrecision(12)))
  return ticks
}

const fmtNum = (v) =>
  v >= 1000
    ? v.toLocaleString('en-US')
    : v >= 10
      ? String(Math.round(v))
      : v >= 1
        ? String(Number(v.toFixed(1)))
        : String(Number(v.toPrecision(2)))

/**
 * @param {{ series: Array<{ name: string, points: Array<{ x: number, y?: number, min?: number, max?: number, failed?: string }> }>,
 *           title: string, xLabel: string, yLabel: string }} spec
 */
export function chartSvg({ series, title, xLabel, yLabel }) {
  const W = 760
  const H = 460
  const m = { left: 80, right: 190, top: 48, bottom: 64 }
  const pw = W - m.left - m.right
  const ph = H - m.top - m.bottom
  const pts = series.flatMap((s) => s.points.filter((p) => p.y !== undefined))
  const xs = series.flatMap((s) => s.points.map((p) => p.x))
  const xMin = 0
  const xMax = Math.max(...xs, 1)
  const yVals = pts.flatMap((p) => [p.y, p.min ?? p.y, p.max ?? p.y]).filter((v) => v > 0)
  const yLo = Math.min(...yVals, 1)
  const yHi = Math.max(...yVals, 0.1)
  const log = yHi / Math.max(yLo, 1e-9) > 20
  let yTicks
  let Y
  if (log) {
    const lo = 10 ** Math.floor(Math.log10(yLo))
    const hi = 10 ** Math.ceil(Math.log10(yHi))
    yTicks = []
    for (let d = lo; d <= hi * 1.0001; d *= 10)
      for (const k of [1, 2, 5]) if (d * k >= lo && d * k <= hi * 1.0001) yTicks.push(d * k)
    Y = (v) => m.top + ph - ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * ph
  } else {
    yTicks = niceTicks(0, yHi * 1.04)
    const hi = yTicks[yTicks.length - 1]
    Y = (v) => m.top + ph - (v / hi) * ph
  }
  const xTicks = niceTicks(xMin, xMax * 1.06)
  const xHi = Math.max(xTicks[xTicks.length - 1], xMax)
  const X = (v) => m.left + (v / xHi) * pw
  const out = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  )
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`)
  out.push(`<text x="${m.left}" y="24" font-size="15" font-weight="bold">${esc(title)}</text>`)
  for (const t of yTicks) {
    const y = Y(t).toFixed(1)
    out.push(`<line x1="${m.left}" x2="${m.left + pw}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`)
    out.push(
      `<text x="${m.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle" fill="#333">${fmtNum(t)}</text>`,
    )
  }
  for (const t of xTicks) {
    const x = X(t).toFixed(1)
    out.push(`<line x1="${x}" x2="${x}" y1="${m.top + ph}" y2="${m.top + ph + 5}" stroke="#333"/>`)
    out.push(`<text x="${x}" y="${m.top + ph + 20}" text-anchor="middle" fill="#333">${fmtNum(t)}</text>`)
  }
  out.push(`<rect x="${m.left}" y="${m.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`)
  out.push(`<text x="${m.left + pw / 2}" y="${H - 18}" text-anchor="middle">${esc(xLabel)}</text>`)
  out.push(
    `<text transform="translate(20 ${m.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}${log ? ' — log scale' : ''}</text>`,
  )
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]
    const ok = s.points.filter((p) => p.y !== undefined)
    if (ok.length > 1) {
      out.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2.2" ${DASH[i] ? `stroke-dasharray="${DASH[i]}"` : ''} points="${ok.map((p) => `${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`).join(' ')}"/>`,
      )
    }
    for (const p of ok) {
      const x = X(p.x).toFixed(1)
      if (p.min !== undefined && p.max !== undefined && p.max > p.min) {
        out.push(
          `<line x1="${x}" x2="${x}" y1="${Y(p.max).toFixed(1)}" y2="${Y(p.min).toFixed(1)}" stroke="${color}" stroke-width="1.5"/>`,
        )
      }
      out.push(
        `<circle cx="${x}" cy="${Y(p.y).toFixed(1)}" r="4" fill="${color}"><title>${esc(`${s.name}: ${p.x} ops → ${p.y.toFixed(2)} s`)}</title></circle>`,
      )
    }
    const ly = m.top + 14 + i * 50
    const lx = m.left + pw + 16
    out.push(
      `<line x1="${lx}" x2="${lx + 26}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2.5" ${DASH[i] ? `stroke-dasharray="${DASH[i]}"` : ''}/>`,
    )
    out.push(`<circle cx="${lx + 13}" cy="${ly}" r="4" fill="${color}"/>`)
    out.push(`<text x="${lx + 34}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`)
    const failed = s.points.filter((p) => p.y === undefined)
    if (failed.length) {
      out.push(
        `<text x="${lx + 34}" y="${ly + 15}" font-size="10" fill="#a00">${esc(`no point at ${failed.map((p) => fmtNum(p.x)).join(', ')}:`)}</text>`,
      )
      out.push(
        `<text x="${lx + 34}" y="${ly + 27}" font-size="10" fill="#a00">${esc(failed[0].failed.slice(0, 28))}</text>`,
      )
    }
  })
  out.push(`<text x="${m.left + pw + 16}" y="${m.top + ph - 26}" font-size="10" fill="#555">dot = median,</text>`)
  out.push(
    `<text x="${m.left + pw + 16}" y="${m.top + ph - 13}" font-size="10" fill="#555">bar = min–max of runs</text>`,
  )
  out.push('</svg>')
  return `${out.join('\n')}\n`
}
