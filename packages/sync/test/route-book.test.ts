import { describe, expect, it } from 'vitest'
import { RouteBook, type RoutedSession } from '@dru/sync'

// A writer's own session opening late after a heal, while a neighbour already forwards the
// writer's origin to us: taking the origin back at once made the forwarder's in-flight window
// and the writer's own window both arrive (bench:sync's heal received 160,000 events for
// 120,000 needed, every one of b's events twice at a). The writer now waits, told its origin
// comes elsewhere, until it can take over without a second copy.

function session(peerId: string, neighbours: string[] = []): RoutedSession & { changes: number } {
  return {
    peerId,
    peerOrigin: `${peerId}/1`,
    peerNeighbours: new Set(neighbours),
    changes: 0,
    routesChanged() {
      this.changes++
    },
  }
}

/** Our book with a forwarder `c` that already brought us `b`'s origin up to seq 50, then `b` itself opening. */
function lateWriter() {
  const book = new RouteBook()
  const c = session('c', ['b'])
  book.opened(c)
  book.delivered(c, ['b/1'], { 'b/1': 50 })
  const b = session('b', ['c'])
  book.opened(b)
  return { book, b, c }
}

describe('route book: a writer that opens while a forwarder brings its origin', () => {
  it('does not preempt the forwarder: the writer is told its own origin comes elsewhere', () => {
    const { book, b, c } = lateWriter()
    expect(book.suppliedBy('b/1')).toBe('c')
    expect(book.elsewhere(b, { 'b/1': 50 })).toEqual({ 'b/1': 50, 'c/1': 0 })
    expect(book.elsewhere(c, { 'b/1': 50 })).toEqual({})
  })

  it('hands the origin to the writer once we hold what the writer held at its vv', () => {
    const { book, b, c } = lateWriter()
    book.writerHead(b, 120, { 'b/1': 50 })
    expect(book.suppliedBy('b/1')).toBe('c')
    book.delivered(c, ['b/1'], { 'b/1': 100 })
    expect(book.suppliedBy('b/1')).toBe('c')
    book.delivered(c, ['b/1'], { 'b/1': 120 })
    expect(book.suppliedBy('b/1')).toBe('b')
    expect(book.elsewhere(c, { 'b/1': 120 })).toEqual({ 'b/1': 120 })
  })

  it('hands it over at once when the forwarder had already caught us up', () => {
    const { book, b } = lateWriter()
    book.writerHead(b, 50, { 'b/1': 50 })
    expect(book.suppliedBy('b/1')).toBe('b')
  })

  it('hands it over when the writer sends its origin itself (the forwarder stalled)', () => {
    const { book, b } = lateWriter()
    book.writerHead(b, 120, { 'b/1': 50 })
    book.delivered(b, ['b/1'], { 'b/1': 60 })
    expect(book.suppliedBy('b/1')).toBe('b')
  })

  it('hands it over when the forwarder closes, not to the next forwarder', () => {
    const { book, c } = lateWriter()
    const d = session('d', ['b'])
    book.opened(d)
    book.closed(c)
    expect(book.suppliedBy('b/1')).toBe('b')
    book.delivered(d, ['b/1'], { 'b/1': 70 })
    expect(book.suppliedBy('b/1')).toBe('b')
  })

  it('a writer that opens first supplies its origin at once, as before', () => {
    const book = new RouteBook()
    const b = session('b')
    book.opened(b)
    expect(book.suppliedBy('b/1')).toBe('b')
  })

  it('knows when another neighbour has a session with a peer (it may forward our events there)', () => {
    const { book, b, c } = lateWriter()
    expect(book.reachedElsewhere(b)).toBe(true)
    expect(book.reachedElsewhere(session('e'))).toBe(false)
    book.closed(c)
    expect(book.reachedElsewhere(b)).toBe(false)
  })
})
