import { readFileSync, readdirSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'
import { DruError, parseDruId } from '@dru/core'
import { checkNetworkFields, validateConfig } from './config.js'
import { MIN_ADMIN_TOKEN_LENGTH } from './config-sections.js'
import type { DruConfig, KeysConfig } from './config-types.js'

/** A config whose file references have been read: secrets and keys are inline. */
export type ResolvedDruConfig = Omit<DruConfig, 'keys' | 'secretFile'> & {
  keys?: { privateKey: string; publicKeys: Record<string, string> }
}

/**
 * Everything {@link openDru} checks before it opens anything, and nothing more: every field
 * on its own, the files the config names (secret, keys, admin token — private ones must be
 * closed to group and others), then the fields against each other (a networked DRU needs
 * the secret and a key for itself and every peer). `dru start --check` runs exactly this.
 * Throws CONFIG_INVALID naming the field; reads files, writes nothing.
 */
export function resolveConfig(config: unknown): ResolvedDruConfig {
  const c = validateConfig(config)
  const { secretFile, keys, ...rest } = c
  const resolved: ResolvedDruConfig = { ...rest }
  if (secretFile !== undefined) {
    if (c.secret !== undefined) fail('secretFile', 'and "secret" are both set: give one')
    resolved.secret = readPrivateFile(secretFile, 'secretFile')
    if (resolved.secret.length < 16) fail('secretFile', `${secretFile} holds fewer than 16 characters`)
  }
  if (keys !== undefined) resolved.keys = readKeys(keys)
  if (c.admin?.tokenFile !== undefined) {
    const { tokenFile, ...admin } = c.admin
    const token = readPrivateFile(tokenFile, 'admin', '.tokenFile')
    if (token.length < MIN_ADMIN_TOKEN_LENGTH)
      fail('admin', `.tokenFile holds fewer than ${MIN_ADMIN_TOKEN_LENGTH} characters`)
    resolved.admin = { ...admin, token }
  }
  checkNetworkFields(resolved as DruConfig)
  return resolved
}

function readKeys(keys: KeysConfig): { privateKey: string; publicKeys: Record<string, string> } {
  const privateKey = keys.privateKey ?? readPrivateFile(keys.privateKeyFile!, 'keys', '.privateKeyFile')
  if (!privateKey.includes('PRIVATE KEY'))
    fail('keys', `.privateKeyFile ${keys.privateKeyFile} does not hold a PEM (PKCS#8) private key`)
  const publicKeys: Record<string, string> = { ...keys.publicKeys }
  for (const [id, file] of Object.entries(keys.publicKeyFiles ?? {}))
    publicKeys[id] = readPublicKey(file, `.publicKeyFiles.${id}`)
  if (keys.publicKeysDir !== undefined) {
    let names: string[]
    try {
      names = readdirSync(keys.publicKeysDir)
    } catch (err) {
      return fail(
        'keys',
        `.publicKeysDir ${keys.publicKeysDir} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      )
    }
    // `<dru-id>.pub` names a member's key; anything else in the folder (private keys included) is not ours to read.
    for (const name of names.filter((n) => n.endsWith('.pub')).sort()) {
      const id = basename(name, '.pub')
      try {
        parseDruId(id)
      } catch {
        fail('keys', `.publicKeysDir holds ${name}, whose name is not a DRU id`)
      }
      publicKeys[id] ??= readPublicKey(join(keys.publicKeysDir, name), `.publicKeysDir ${name}`)
    }
  }
  return { privateKey, publicKeys }
}

function readPublicKey(file: string, what: string): string {
  const pem = readText(file, 'keys', what)
  if (!pem.includes('PUBLIC KEY')) fail('keys', `${what} (${file}) does not hold a PEM (SPKI) public key`)
  return pem
}

/**
 * Reads a secret from a file, trailing newline trimmed. Like an ssh key, a secret other
 * local users can read or replace is no secret: mode must close it to group and others.
 */
function readPrivateFile(file: string, field: string, what = ''): string {
  let mode: number
  try {
    mode = statSync(file).mode & 0o777
  } catch (err) {
    return fail(
      field,
      `${what} ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    )
  }
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    fail(field, `${what} ${file} is open to group or others (mode ${mode.toString(8)}): chmod 600 it`)
  }
  const text = readText(file, field, what)
  if (text === '') fail(field, `${what} ${file} is empty`)
  return text
}

function readText(file: string, field: string, what: string): string {
  try {
    return readFileSync(file, 'utf8').replace(/\r?\n$/, '')
  } catch (err) {
    return fail(
      field,
      `${what} ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    )
  }
}

function fail(field: string, message: string): never {
  throw new DruError('CONFIG_INVALID', `config field "${field}"${message.startsWith(' ') ? '' : ' '}${message}`, {
    details: { field },
  })
}
