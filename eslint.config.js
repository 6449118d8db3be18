// Type-aware lint: catches floating promises and misused async, the bugs that lose data quietly.
// It also enforces the layering (docs/ARCHITECTURE.md): which folder of src/ may import which.
// scripts/check-layers.mjs, run by `npm test`, adds what a lint rule cannot see: import cycles, and
// test helpers reachable from the product's entry points.
import tseslint from 'typescript-eslint';

/**
 * What each folder of src/ may import besides itself. A layer imports only below; `cli` is the top
 * and nothing imports it; `server` (the dashboard's HTTP side) is below it, for `lifeboat serve`.
 * `web` is the page: its API types and markup, importing nothing (web/client/ is the browser's
 * script, compiled by its own tsconfig). `tree` is the one tree interface (issue 18 item 2),
 * implemented in files/ and image/. `files` and `image` may import store/ for types
 * only (they receive a Store, they never open one), and every layer above repo/ may import only
 * REPO_PUBLIC from it. `bench` is a measuring tool beside the CLI.
 */
const LAYERS = {
  util: [],
  store: ['util'],
  repo: ['store', 'util'],
  chunking: ['util'],
  tree: ['util'],
  files: ['repo', 'chunking', 'tree', 'store', 'util'],
  image: ['repo', 'chunking', 'tree', 'store', 'util'],
  jobs: ['files', 'image', 'repo', 'chunking', 'tree', 'store', 'util'],
  cli: ['server', 'jobs', 'files', 'image', 'repo', 'chunking', 'tree', 'store', 'util'],
  server: ['web', 'jobs', 'files', 'image', 'repo', 'chunking', 'tree', 'store', 'util'],
  web: [],
  bench: ['jobs', 'files', 'image', 'repo', 'chunking', 'tree', 'store', 'util'],
};
const STORE_TYPES_ONLY = ['files', 'image'];

/** repo/'s public face, until repo/index.ts exists (P7 item 3); everything else in repo/ is internal. */
const REPO_PUBLIC = ['repository', 'worker-codec', 'snapshot', 'ids', 'check', 'repair', 'forget', 'prune', 'pins', 'keys', 'parity'];

/**
 * Test code, relative to src/: test files and the helpers they share. Product code must never
 * import these (some *testing.ts helpers set LIFEBOAT_INSECURE_FAST_KDF when loaded);
 * scripts/check-layers.mjs proves none is reachable from a product entry point.
 * Test code itself is not layered: a test may drive the real CLI (cli/testing.ts) from any folder.
 */
export const TEST_CODE = [
  '**/*.test.ts',
  '**/testing.ts',
  '**/*-testing.ts',
  'store/conformance.ts',
  'store/fault.ts',
];
const TEST_IMPORT_REGEX = '(^|/)([^/]*testing|conformance|fault|[^/]*\\.test)\\.js$';

/**
 * Imports that break the rules above today, one entry per importing file: the modules it may still
 * import (folder/name, without .js). Every entry is to be removed by P7's sealed repository (issue
 * 18, item 3) or its tree interface (item 2): delete an entry when its import goes away. A NEW
 * violation fails the lint; do not add entries for new code.
 */
const ALLOWED_TODAY = {
  // Not a to-do: the benchmark measures the chunk index by itself.
  'bench/index-scale.ts': ['repo/chunk-index'],
};

const FOLDERS = Object.keys(LAYERS);
const up = '^(\\.\\./)+'; // a relative import that leaves the importing file's folder
const except = (names) => (names.length ? `(?!(${names.join('|')})\\.js$)` : '');

/** The no-restricted-imports patterns for a file of `layer` that may also import `allowed`. */
function layerPatterns(layer, allowed = []) {
  const allowedIn = (folder) => allowed.filter((a) => a.startsWith(`${folder}/`)).map((a) => a.slice(folder.length + 1));
  const patterns = [{ regex: TEST_IMPORT_REGEX, caseSensitive: true, message: 'Product code must not import test code (tests and test helpers).' }];
  for (const folder of FOLDERS) {
    if (folder === layer) continue;
    const message = `${layer}/ may import only ${LAYERS[layer].join(', ') || 'node: modules'} (docs/ARCHITECTURE.md).`;
    if (!LAYERS[layer].includes(folder)) {
      patterns.push({ regex: `${up}${folder}/${except(allowedIn(folder))}`, caseSensitive: true, message });
    } else if (folder === 'repo') {
      patterns.push({ regex: `${up}repo/${except([...REPO_PUBLIC, ...allowedIn('repo')])}`, caseSensitive: true, message: `Above repo/, import only its public face: ${REPO_PUBLIC.join(', ')}.` });
    } else if (folder === 'store' && STORE_TYPES_ONLY.includes(layer)) {
      patterns.push({ regex: `${up}store/${except(allowedIn('store'))}`, caseSensitive: true, allowTypeImports: true, message: `${layer}/ may import store/ for types only: it is given a Store, it never opens one.` });
    }
  }
  return ['error', { patterns }];
}

const RULE = '@typescript-eslint/no-restricted-imports';
/**
 * Product code reads the time of day only through util/clock.ts, so tests can set it. The
 * benchmark measures wall time and may read it directly.
 */
const clockMessage = 'Read the time through util/clock.ts (a Clock parameter defaulting to systemClock), so tests can set it.';
const clock = {
  files: ['src/**/*.ts'],
  ignores: [...TEST_CODE.map((p) => `src/${p}`), 'src/util/clock.ts', 'src/bench/**'],
  rules: {
    'no-restricted-properties': ['error', { object: 'Date', property: 'now', message: clockMessage }],
    'no-restricted-syntax': ['error', { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: clockMessage }],
  },
};

/** The rules of docs/ARCHITECTURE.md: layering, then the clock. */
export const architecture = [
  clock,
  ...FOLDERS.map((layer) => ({
    files: [`src/${layer}/**/*.ts`],
    ignores: TEST_CODE.map((p) => `src/${p}`),
    rules: { [RULE]: layerPatterns(layer) },
  })),
  ...Object.entries(ALLOWED_TODAY).map(([file, allowed]) => ({
    files: [`src/${file}`],
    rules: { [RULE]: layerPatterns(file.split('/')[0], allowed) },
  })),
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bench/work/**'] },
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        { allowForKnownSafeCalls: [{ from: 'package', name: ['test', 'it', 'describe', 'suite'], package: 'node:test' }] },
      ],
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/restrict-template-expressions': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/only-throw-error': 'off',
      '@typescript-eslint/prefer-promise-reject-errors': 'off',
    },
  },
  ...architecture,
);
