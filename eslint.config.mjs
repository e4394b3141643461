// One lint for the whole tree (issue 11), beside one format (Prettier): typescript-eslint's and eslint-plugin-svelte's recommended
// rules, and the import boundaries the architecture rests on:
//   models/ is pure model code: nothing from electron/ or renderer/;
//   the renderer talks to the engine only through the contract (electron/common/);
//   electron/common/ (the contract) imports nothing from the engine, the hosts or the renderer.
import js from '@eslint/js'
import globals from 'globals'
import svelte from 'eslint-plugin-svelte'
import tseslint from 'typescript-eslint'
import prettier from 'eslint-config-prettier'

const boundary = (group, message) => ({ 'no-restricted-imports': ['error', { patterns: [{ group, message }] }] })

export default tseslint.config(
  { ignores: ['out/**', 'node_modules/**', 'test-results/**', 'bench/results*', '**/*.d.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  ...svelte.configs['flat/recommended'],
  {
    languageOptions: { globals: { ...globals.node, ...globals.browser } },
    rules: {
      // Names starting with _ are deliberately unused (a callback's position, say).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      // `require` is how the CJS entry points and the e2e helpers load built files.
      '@typescript-eslint/no-require-imports': 'off',
      // Keys matter where list items move (the runs list is keyed); the tables here are redrawn whole.
      'svelte/require-each-key': 'off'
    }
  },
  {
    files: ['**/*.svelte', '**/*.svelte.ts'],
    languageOptions: { parserOptions: { parser: tseslint.parser, extraFileExtensions: ['.svelte'] } }
  },
  { files: ['models/**/*.ts'], rules: boundary(['**/electron/**', '**/renderer/**'], 'models/ is pure model code: it imports nothing from the app') },
  // models/random.ts (a seeded PRNG and a shuffle, no dependencies) is shared with the scatter plot,
  // models/latent-size.ts (how the latent size knob splits, arithmetic only) with the Training panel.
  {
    files: ['renderer/**/*.ts', 'renderer/**/*.svelte'],
    rules: boundary(
      ['**/electron/engine/**', '**/electron/host/**', '**/electron/main/**', '**/models/**', '!**/models/random', '!**/models/latent-size'],
      'the renderer reaches the engine only through electron/common (the contract)'
    )
  },
  {
    files: ['electron/common/**/*.ts'],
    rules: boundary(['**/engine/**', '**/host/**', '**/main/**', '**/renderer/**'], 'the contract sits at the bottom: it imports only model types')
  },
  // Layout is Prettier's (.prettierrc.json, checked by \`npm test\`): no lint rule argues with it.
  prettier
)
