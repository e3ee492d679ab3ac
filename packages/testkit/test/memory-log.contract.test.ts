import { MemoryLog, runReplicaLogContract } from '@dru/testkit'

runReplicaLogContract('MemoryLog', (druId) => {
  const log = new MemoryLog(druId)
  return {
    log,
    append: (docId, changes) => log.append(docId, changes),
    fold: (floor) => log.fold(floor),
    close: () => log.close(),
  }
})
