import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

/**
 * The built child script. Resolved through `dist/` from both `src/` and `dist/`, so a test
 * run from the TypeScript sources still spawns built JavaScript, as a service would run it.
 */
export const DRU_CHILD = fileURLToPath(new URL('../dist/dru-child.js', import.meta.url))

/** Where a running {@link DruProcess} listens (all on 127.0.0.1, chosen by the OS). */
export interface DruPorts {
  /** The control API (see `dru-child.ts`). */
  control: number
  /** The sync listener, 0 when the config has none. */
  sync: number
  /** The admin API's base URL, '' when the config has none. */
  admin: string
}

/** How to start a {@link DruProcess}. */
export interface DruProcessOptions {
  /** The JSON config file the child passes to `openDru`; a restart reads it again. */
  configPath: string
  /** An ES module adding handlers and control routes ({@link DruChildPlugin}). */
  plugin?: string
  /** Added to the parent's environment. */
  env?: Record<string, string>
  /** Node flags for the child, e.g. `--expose-gc` (default none). */
  nodeFlags?: string[]
  /** Every stdout line except the ready line: the DRU's log (`log: 'json'`) or a plugin's. */
  onLine?: (line: string) => void
  /** Every chunk the child writes to stderr. */
  onStderr?: (text: string) => void
}

/** A control request's answer. */
export interface ControlResponse<T = unknown> {
  status: number
  body: T
}

/**
 * A DRU in its own process (`openDru` from the built packages) on 127.0.0.1, driven over
 * a small HTTP control API: read and write documents, status, backup, plus whatever a
 * plugin adds. SIGKILL it, stop it cleanly, pause it, restart it on the same files.
 *
 * @remarks The child exits when the parent does (it watches its stdin), so a crashed test
 * leaves no DRU behind.
 */
export class DruProcess {
  readonly child: ChildProcess
  readonly options: DruProcessOptions
  /** Resolves with the exit code, or the signal name when killed. */
  readonly exited: Promise<number | string | null>
  readonly ports: DruPorts

  private constructor(
    child: ChildProcess,
    options: DruProcessOptions,
    ports: DruPorts,
    exited: Promise<number | string | null>,
  ) {
    this.child = child
    this.options = options
    this.ports = ports
    this.exited = exited
  }

  /** Spawns the child and resolves once it is ready; rejects with its stderr if it exits first. */
  static start(options: DruProcessOptions): Promise<DruProcess> {
    const args = [
      ...(options.nodeFlags ?? []),
      DRU_CHILD,
      options.configPath,
      ...(options.plugin ? [options.plugin] : []),
    ]
    const child = spawn(process.execPath, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
    })
    const exited = new Promise<number | string | null>((resolve) =>
      child.once('exit', (code, signal) => resolve(code ?? signal)),
    )
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000)
      options.onStderr?.(d.toString())
    })
    return new Promise((resolve, reject) => {
      let ready = false
      createInterface({ input: child.stdout }).on('line', (line) => {
        if (ready || !line.startsWith('ready ')) return options.onLine?.(line)
        ready = true
        resolve(new DruProcess(child, options, JSON.parse(line.slice(6)) as DruPorts, exited))
      })
      void exited.then((how) => ready || reject(new Error(`exited (${how}) before ready: ${stderr}`)))
    })
  }

  /** The pid of the child. */
  get pid(): number {
    return this.child.pid!
  }

  /** Neither exited nor killed. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** Sends one control request; a JSON body is sent as is when a string, else serialised. */
  async request<T = unknown>(
    method: string,
    path: string,
    options: { body?: unknown; timeoutMs?: number } = {},
  ): Promise<ControlResponse<T>> {
    const body =
      options.body === undefined || typeof options.body === 'string' ? options.body : JSON.stringify(options.body)
    const res = await fetch(`http://127.0.0.1:${this.ports.control}${path}`, {
      method,
      ...(body === undefined ? {} : { body }),
      ...(options.timeoutMs ? { signal: AbortSignal.timeout(options.timeoutMs) } : {}),
    })
    return { status: res.status, body: (await res.json()) as T }
  }

  /** Sends a signal without waiting (SIGSTOP / SIGCONT to pause and resume). */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal)
  }

  /** Kills the child (SIGKILL by default: a crash) and waits until it is gone. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (this.running) this.child.kill(signal)
    await this.exited
  }

  /** Stops cleanly (SIGTERM: the DRU closes), SIGKILL after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.running) return
    this.child.kill('SIGCONT')
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs)
    await this.exited
    clearTimeout(timer)
  }

  /** SIGKILLs this process and starts another on the same config file and plugin. */
  async restart(): Promise<DruProcess> {
    await this.kill()
    return DruProcess.start(this.options)
  }
}
