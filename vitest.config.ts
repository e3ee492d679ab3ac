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
  const { exports = {} } = JSON.parse(readFileSync(`${packagesDir}${name}/package.json`, 'utf8')) as {
    exports?: Record<string, unknown>
  }
  return Object.keys(exports)
    .filter((key) => key !== '.')
    .map((key) => ({
      find: `@dru/${name}/${key.slice(2)}`,
      replacement: `${packagesDir}${name}/src/${key.slice(2)}.ts`,
    }))
}

// Subpaths first: an alias matches its prefix, so `@dru/node` would swallow `@dru/node/admin-api`.
const alias = [
  ...packages.flatMap(subpaths),
  ...packages.map((name) => ({
    find: new RegExp(`^@dru/${name}$`),
    replacement: `${packagesDir}${name}/src/index.ts`,
  })),
]

// Package tests that start child processes, crash them or drive a browser: they belong to
// the integration tier even though they live next to their package.
const packageProcessTests = [
  'packages/cli/test/cli.test.ts',
  'packages/cli/test/inbox.test.ts',
  'packages/documents/test/compaction-crash.test.ts',
  'packages/node/test/admin-browser.test.ts',
  'packages/node/test/admin-ui.test.ts',
  'packages/node/test/exactly-once.test.ts',
  'packages/node/test/inbox-crash.test.ts',
  'packages/node/test/v8-workaround.test.ts',
  'packages/store-sqlite/test/crash.test.ts',
]

/**
 * Three tiers (CONTRIBUTING.md says when to run which):
 * - unit: in-process, no child processes; the inner loop (`npm run test:unit`).
 * - integration: real processes, sockets, crashes and the hostile suite.
 * - system: the chaos run, the demo and the benchmark smoke.
 * `npm test` runs all three, as CI does.
 */
export default defineConfig({
  resolve: { alias },
  test: {
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['packages/*/test/**/*.test.ts'], exclude: packageProcessTests },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: [
            ...packageProcessTests,
            'test/{sync,procedures,hostile,inbox,convergence,deploy,examples}/**/*.test.ts',
          ],
        },
      },
      {
        extends: true,
        test: { name: 'system', include: ['test/{chaos,demo,bench,newcomer}/**/*.test.ts'] },
      },
    ],
  },
})
