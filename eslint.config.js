// Lint: typescript-eslint's recommended rules, floating promises, and the package boundaries
// that docs/ARCHITECTURE.md promises (core does no I/O; sync sees the log only through the
// ports in @dru/core; nothing reaches into another package's src).
import js from '@eslint/js'
import tseslint from 'typescript-eslint'

const ioModules = ['fs', 'net', 'http', 'https', 'tls', 'child_process', 'worker_threads', 'dgram', 'dns', 'cluster']
const ioPatterns = [...ioModules.flatMap((m) => [m, `node:${m}`, `${m}/*`, `node:${m}/*`]), 'better-sqlite3', 'ws']
const noDeepImports = {
  group: ['@dru/*/src/*', '@dru/*/dist/*', '../../*/src/*'],
  message: 'Import a package through its door (index or a declared subpath export).',
}

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'benchmarks/compare/**/vendor/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        console: 'readonly',
        process: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        clearImmediate: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        TextEncoder: 'readonly',
        TextDecoder: 'readonly',
        fetch: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
        structuredClone: 'readonly',
        queueMicrotask: 'readonly',
        performance: 'readonly',
        globalThis: 'readonly',
        crypto: 'readonly',
        Response: 'readonly',
        Request: 'readonly',
        Headers: 'readonly',
        WebSocket: 'readonly',
        gc: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      'no-empty': ['error', { allowEmptyCatch: true }],
      // `ok ? resolve() : reject()` and `closed || write()` are statements here on purpose.
      '@typescript-eslint/no-unused-expressions': ['error', { allowShortCircuit: true, allowTernary: true }],
    },
  },
  {
    // Type-aware rules for the shipped sources: a dropped promise is a lost error.
    files: ['packages/*/src/**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      'no-restricted-imports': ['error', { patterns: [noDeepImports] }],
    },
  },
  {
    files: ['packages/core/src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [noDeepImports, { group: ioPatterns, message: '@dru/core does no I/O: put it behind a port.' }] },
      ],
    },
  },
  {
    files: ['packages/sync/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            noDeepImports,
            {
              group: ['@dru/store-sqlite', '@dru/store-sqlite/*', 'better-sqlite3'],
              message: 'sync reaches the log only through the ReplicaLog and PeerBook ports in @dru/core.',
            },
          ],
        },
      ],
    },
  },
)
