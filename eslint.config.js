// @ts-check
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', '.venv/', '.factory/', 'build/', 'trainers/', 'bin/'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Production code never reaches the local dev stack (src/dev/): only the CLI's `dev` and `demo` commands run it.
    files: ['activities/**/*.ts', 'workers/**/*.ts', 'src/**/*.ts'],
    ignores: ['src/dev/**', 'src/cli/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['**/dev/*', '**/dev/**'] }],
    },
  },
  {
    // Workflow code is replayed: it must not reach Node built-ins, clocks or randomness outside Temporal's.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: ['node:*', 'fs', 'path', 'child_process', '../activities/*/*.ts', 'pg', 'kysely', '@aws-sdk/*'] }],
      'no-restricted-globals': ['error', 'setTimeout', 'setInterval', 'fetch', 'process'],
    },
  },
);
