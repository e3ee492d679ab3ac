import { TREE_LEVELS } from '@dru/core'
import type { ProbeFrame, ReportFrame, TreeProbeFrame, TreeReportFrame } from '../frames.js'
import type { ProtocolConfig, TreeSource } from './session-config.js'

/** Our answer to a probe: our summary, and our state digest when it asked for a deep one (null without one). */
export function summaryReport(config: Pick<ProtocolConfig, 'log' | 'describe'>, frame: ProbeFrame): ReportFrame {
  const state = frame.deep ? config.describe?.() : undefined
  return {
    type: 'report',
    id: frame.id,
    summary: config.log.summary(),
    stateDigest: state?.digest ?? null,
    documents: state?.documents ?? null,
  }
}

/** Our answer to a tree probe, from the tree as of our last refresh (nothing without a tree: every node then differs). */
export function treeReport(tree: TreeSource | undefined, frame: TreeProbeFrame): TreeReportFrame {
  if (!tree) return { type: 'tree-report', id: frame.id, hashes: [], docs: [] }
  if (frame.level < TREE_LEVELS)
    return {
      type: 'tree-report',
      id: frame.id,
      hashes: frame.nodes.flatMap((n) => tree.children(frame.level, n)),
      docs: [],
    }
  return { type: 'tree-report', id: frame.id, hashes: [], docs: frame.nodes.flatMap((n) => tree.bucket(n)) }
}
