import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', '**/.tidings/**', '**/coverage/**', '.stryker-tmp/**', 'reports/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        performance: 'readonly',
        AbortController: 'readonly',
        AbortSignal: 'readonly',
      },
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // Packages talk only through each other's entry points, so a third-party adapter can do what ours do.
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: [
                '@tidings/*/*',
                '!@tidings/core/adapter',
                '!@tidings/core/diagrams',
                '!@tidings/nest/microservices',
                '!@tidings/adapter-mikro-orm/migrations',
              ],
              message: 'Import a Tidings package by its name or a subpath its package.json exports; no deep imports.',
            },
            {
              group: ['**/core/src/**', '**/adapters/*/src/**', '**/plugins/*/src/**'],
              message: 'Import another package by its name (@tidings/...), not by path.',
            },
          ],
        },
      ],
    },
  },
  {
    // CommonJS files exist to prove the packages load through require().
    files: ['**/*.cjs'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', module: 'writable' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
