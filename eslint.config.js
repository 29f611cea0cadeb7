import { readFileSync } from 'node:fs';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * What src/cli/ may import (besides itself, node builtins and commander): the library's public
 * modules — those src/index.ts re-exports from, read from it here so the rule follows the API —
 * and the shared foundations. Never deeper: no solver, graph, snapshot or store internals. A
 * type-only import may name any module (it is erased). The exceptions say why.
 */
const libraryModules = [...readFileSync(new URL('./src/index.ts', import.meta.url), 'utf8').matchAll(/from '\.\/([^']+)'/g)].map((m) => m[1]);
const foundations = ['errors.js', 'config.js', 'version.js', 'trace.js', 'lifecycle.js', 'csv.js'];
const cliExceptions = [
  'oci/lock.js', // main.ts: releasing held locks and reporting lock waits is process lifecycle
  'export/format.js', // tables and human sizes: moves into src/cli/ (issue #9, export slice)
];
const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const allowed = [...new Set([...libraryModules, ...foundations, ...cliExceptions])].map(escape).join('|');

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['scripts/**/*.mjs', 'bin/**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-control-regex': 'off',
    },
  },
  {
    files: ['src/cli/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: `^\\.\\./(?!(?:${allowed})$)`,
              allowTypeImports: true,
              message: 'src/cli/ uses the library: import a module src/index.ts re-exports from (or a foundation), not its internals; see eslint.config.js',
            },
          ],
        },
      ],
    },
  },
);
