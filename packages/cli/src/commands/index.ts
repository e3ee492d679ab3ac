import type { CommandModule } from '../context.js'
import { compactCommand } from './compact.js'
import { conflictsCommand } from './conflicts.js'
import { decommissionCommand } from './decommission.js'
import { unquarantineCommand } from './unquarantine.js'
import { demoCommand } from './demo.js'
import { gapsCommand } from './gaps.js'
import { inboxCommand } from './inbox.js'
import { initCommand } from './init.js'
import { repairCommand } from './repair.js'
import { restoreCommand } from './restore.js'
import { startCommand } from './start.js'
import { statusCommand } from './status.js'
import { verifyCommand } from './verify.js'
import { waitCommand } from './wait.js'

/** Every `dru` command, in help order. A new command is a file here plus one line below. */
export const COMMANDS: readonly CommandModule[] = [
  initCommand,
  startCommand,
  statusCommand,
  waitCommand,
  gapsCommand,
  verifyCommand,
  repairCommand,
  conflictsCommand,
  inboxCommand,
  compactCommand,
  restoreCommand,
  decommissionCommand,
  unquarantineCommand,
  demoCommand,
]
