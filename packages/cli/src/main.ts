#!/usr/bin/env node
import { runCli } from './program.js'
import type { CliContext, DruRuntime } from './context.js'

/** Loads `@dru/node` only for `dru start`, so inspection commands start fast. */
async function loadRuntime(): Promise<DruRuntime> {
  const node = (await import('@dru/node')) as Record<string, unknown>
  return {
    openDru: typeof node.openDru === 'function' ? (node.openDru as DruRuntime['openDru']) : undefined,
    // resolveConfig is what openDru runs first (fields, referenced files, fields together).
    validateConfig:
      typeof node.resolveConfig === 'function' ? (node.resolveConfig as DruRuntime['validateConfig']) : undefined,
  }
}

const ctx: CliContext = {
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
  env: process.env,
  cwd: process.cwd(),
  now: Date.now,
  loadRuntime,
  waitForShutdown: () =>
    new Promise((resolve) => {
      const stop = (signal: NodeJS.Signals) => {
        process.off('SIGINT', stop)
        process.off('SIGTERM', stop)
        resolve(signal)
      }
      process.on('SIGINT', stop)
      process.on('SIGTERM', stop)
    }),
}

const code = await runCli(process.argv.slice(2), ctx)
// Exit explicitly once the command is done: fetch's pooled keep-alive sockets to a DRU that
// has just been stopped (the demo) can otherwise keep the process running. stdout and
// stderr are synchronous for files and pipes, so nothing printed is lost.
process.exit(code)
