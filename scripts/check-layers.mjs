// The layering checks a lint rule cannot make (docs/ARCHITECTURE.md), run by `npm test` before the
// tests; exits 1 on any finding:
// - import cycles among src/**/*.ts, type-only imports included (a type cycle is still two modules
//   that cannot be understood, tested or moved apart);
// - test code (eslint.config.js's TEST_CODE: tests, *testing.ts helpers, some of which weaken the KDF) imported
//   by product code, or reachable from a product entry point (bin/lifeboat.js's dist/cli/main.js,
//   the benchmark, and the worker threads they start through `new URL('./x.js', import.meta.url)`);
// - the lint's layering and clock rules no longer flagging known violations (they are built from
//   tables, and a table with a typo would silently allow everything).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { TEST_CODE, architecture } from '../eslint.config.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SRC = join(ROOT, 'src');
const ENTRY_POINTS = ['cli/main.ts', 'cli/rescue-main.ts', 'bench/main.ts'];
/** Cycles known today, as sorted module lists joined by ' '. None: keep it so. */
const ALLOWED_CYCLES = [];

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(relative(SRC, p));
  }
  return out;
}

/** Imports (static, dynamic, `import('x').T` types, re-exports) and worker scripts of one module. */
function importsOf(file) {
  const text = readFileSync(join(SRC, file), 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true);
  const imports = [];
  const workers = [];
  const literal = (n) => (n && ts.isStringLiteralLike(n) ? n.text : undefined);
  const visit = (n) => {
    let spec;
    if (ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) spec = literal(n.moduleSpecifier);
    else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) spec = literal(n.arguments[0]);
    else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument)) spec = literal(n.argument.literal);
    else if (ts.isNewExpression(n) && n.expression.getText(sf) === 'URL' && n.arguments?.[1]?.getText(sf) === 'import.meta.url') {
      const w = literal(n.arguments[0]);
      if (w?.startsWith('.')) workers.push(w);
    }
    if (spec?.startsWith('.')) imports.push(spec);
    ts.forEachChild(n, visit);
  };
  visit(sf);
  // Modules of src/ only: a relative import of something else (../../package.json) is no layer's.
  const toModule = (spec) => relative(SRC, resolve(join(SRC, dirname(file)), spec.replace(/\.js$/, '.ts')));
  const inSrc = (m) => m.endsWith('.ts') && !m.startsWith('..');
  return { imports: imports.map(toModule).filter(inSrc), workers: workers.map(toModule).filter(inSrc) };
}

const globToRegex = (g) => new RegExp(`^${g.replace(/[.]/g, '\\.').replace(/\*\*\//g, '\0').replace(/\*/g, '[^/]*').replace(/\0/g, '(.*/)?')}$`);
const testPatterns = TEST_CODE.map(globToRegex);
const isTestCode = (m) => testPatterns.some((r) => r.test(m));

const modules = walk(SRC, []).sort();
const graph = new Map(modules.map((m) => [m, importsOf(m)]));
const problems = [];

// 1. Cycles: Tarjan's strongly connected components over import edges.
{
  let index = 0;
  const idx = new Map();
  const low = new Map();
  const stack = [];
  const onStack = new Set();
  const strong = (v) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v)?.imports ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const scc = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      const selfLoop = graph.get(v).imports.includes(v);
      if ((scc.length > 1 || selfLoop) && !ALLOWED_CYCLES.includes(scc.sort().join(' '))) {
        problems.push(`import cycle among ${scc.join(', ')} (type-only imports count too: move the shared type to the lower module)`);
      }
    }
  };
  for (const m of modules) if (!idx.has(m)) strong(m);
}

// 2. Test code: never imported by product code, never reachable from an entry point.
for (const [m, { imports, workers }] of graph) {
  if (isTestCode(m)) continue;
  for (const t of [...imports, ...workers].filter(isTestCode)) problems.push(`product module ${m} imports test code ${t}`);
}
{
  const from = new Map(ENTRY_POINTS.map((e) => [e, undefined]));
  const queue = [...ENTRY_POINTS];
  while (queue.length > 0) {
    const m = queue.shift();
    const node = graph.get(m);
    if (!node) {
      problems.push(`entry point or import ${m} not found`);
      continue;
    }
    for (const next of [...node.imports, ...node.workers]) {
      if (from.has(next)) continue;
      from.set(next, m);
      queue.push(next);
    }
  }
  for (const m of from.keys()) {
    if (!isTestCode(m)) continue;
    const path = [m];
    for (let p = from.get(m); p !== undefined; p = from.get(p)) path.unshift(p);
    problems.push(`test code ${m} is reachable from a product entry point: ${path.join(' -> ')}`);
  }
}

// 3. The lint's layering still bites: each probe must be flagged by the rule, each fine one not.
{
  const eslint = new ESLint({
    cwd: ROOT,
    overrideConfigFile: true,
    overrideConfig: [{ files: ['**/*.ts'], languageOptions: { parser: tseslint.parser }, plugins: { '@typescript-eslint': tseslint.plugin } }, ...architecture],
  });
  const probes = [
    ['store/probe.ts', "import { Repository } from '../repo/repository.js';", true],
    ['util/probe.ts', "import type { Store } from '../store/store.js';", true],
    ['chunking/probe.ts', "import type { Store } from '../store/store.js';", true],
    ['repo/probe.ts', "import { chunkStream } from '../chunking/fastcdc.js';", true],
    ['repo/probe.ts', "import { newRepository } from './maintenance-testing.js';", true],
    ['repo/probe.ts', "import { LocalStore } from '../store/local.js';", false],
    ['files/probe.ts', "import { seal } from '../repo/crypto.js';", true],
    ['files/probe.ts', "import { LocalStore } from '../store/local.js';", true],
    ['files/probe.ts', "import type { Store } from '../store/store.js';", false],
    ['files/probe.ts', "import { Repository } from '../repo/repository.js';", false],
    ['files/probe.ts', "import { main } from '../cli/main.js';", true],
    ['files/probe.ts', "export * from '../image/browse.js';", true],
    ['image/fs/probe.ts', "import { Restorer } from '../../files/restore.js';", true],
    ['image/fs/probe.ts', "import { sh } from '../testing.js';", true],
    ['files/restore-worker.ts', "import { applyDelta } from '../repo/delta.js';", true],
    ['files/restore-worker.ts', "import { open } from '../repo/crypto.js';", true],
    ['files/restore-worker.ts', "import { WorkerCodec } from '../repo/worker-codec.js';", false],
    ['bench/index-scale.ts', "import { ChunkIndex } from '../repo/chunk-index.js';", false],
    ['bench/index-scale.ts', "import { seal } from '../repo/crypto.js';", true],
    ['cli/probe.ts', "import { LocalStore } from '../store/local.js';", false],
    ['cli/probe.ts', "import { MemoryStore } from '../store/fault.js';", true],
    ['cli/commands/probe.ts', "import { pack } from '../../repo/pack.js';", true],
    ['files/probe.test.ts', "import { lifeboat } from '../cli/testing.js';", false],
    ['store/probe.ts', 'export const t = Date.now();', true],
    ['repo/lock.ts', 'export const t = new Date();', true],
    ['store/probe.ts', 'export const t = new Date(0);', false],
  ];
  for (const [file, code, flagged] of probes) {
    const [result] = await eslint.lintText(code, { filePath: join(SRC, file) });
    const ours = (m) => ['@typescript-eslint/no-restricted-imports', 'no-restricted-properties', 'no-restricted-syntax'].includes(m.ruleId);
    const hits = result.messages.filter(ours).length;
    const other = result.messages.filter((m) => !ours(m));
    if (other.length > 0) problems.push(`lint probe ${file}: ${other.map((m) => m.message).join('; ')}`);
    if ((hits > 0) !== flagged) problems.push(`lint probe ${file} "${code}" was ${hits > 0 ? '' : 'not '}flagged: the layering table in eslint.config.js is wrong`);
  }
}

if (problems.length > 0) {
  for (const p of problems) console.error(`check-layers: ${p}`);
  process.exit(1);
}
console.log(`check-layers: ${modules.length} modules, no cycles, no test code in the product, layering lint bites.`);
