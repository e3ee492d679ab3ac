import { readdirSync, existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

// Tests import every @dru/* package from its TypeScript source, so a test run never
// depends on a stale dist/. Child processes spawned by tests use the built dist/ instead
// (npm test builds first).
const packagesDir = fileURLToPath(new URL('./packages/', import.meta.url))
const alias = Object.fromEntries(
  readdirSync(packagesDir)
    .filter((name) => existsSync(`${packagesDir}${name}/src/index.ts`))
    .map((name) => [`@dru/${name}`, `${packagesDir}${name}/src/index.ts`]),
)

export default defineConfig({
  resolve: { alias },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})
