import { existsSync, readFileSync, readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

// Tests import every @dru/* package from its TypeScript source, so a test run never
// depends on a stale dist/. Child processes spawned by tests use the built dist/ instead
// (npm test builds first).
const packagesDir = fileURLToPath(new URL('./packages/', import.meta.url))
const packages = readdirSync(packagesDir).filter((name) => existsSync(`${packagesDir}${name}/src/index.ts`))

/** A package's subpath exports (`@dru/node/admin-api` → src/admin-api.ts), from its `exports` map. */
function subpaths(name: string): Array<{ find: string; replacement: string }> {
  const { exports = {} } = JSON.parse(readFileSync(`${packagesDir}${name}/package.json`, 'utf8')) as { exports?: Record<string, unknown> }
  return Object.keys(exports)
    .filter((key) => key !== '.')
    .map((key) => ({ find: `@dru/${name}/${key.slice(2)}`, replacement: `${packagesDir}${name}/src/${key.slice(2)}.ts` }))
}

// Subpaths first: an alias matches its prefix, so `@dru/node` would swallow `@dru/node/admin-api`.
const alias = [
  ...packages.flatMap(subpaths),
  ...packages.map((name) => ({ find: new RegExp(`^@dru/${name}$`), replacement: `${packagesDir}${name}/src/index.ts` })),
]

export default defineConfig({
  resolve: { alias },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})
