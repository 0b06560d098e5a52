// Fails the build when a module imports against DESIGN.md's dependency direction, when live
// view transports import each other, or when modules import each other in a cycle.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, dirname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

// layer -> layers it may import (besides itself)
export const ALLOWED = {
  util: [],
  types: [],
  config: ['util'],
  display: ['util', 'config'],
  browser: ['util', 'config'],
  cdp: ['util', 'config'],
  audit: ['util', 'config'],
  profiles: ['util', 'config', 'audit'],
  // Counters only (src/metrics/prometheus.ts, restarts): no layer above.
  metrics: ['util', 'audit'],
  liveview: ['display', 'util', 'config', 'metrics'],
  sessions: ['util', 'config', 'display', 'browser', 'cdp', 'audit', 'liveview', 'profiles'],
  http: ['sessions', 'audit', 'profiles', 'util', 'config', 'metrics'],
  // MCP is another front door beside http: its /mcp route and helpers come from there.
  mcp: ['http', 'sessions', 'util', 'config'],
  // The browser side (viewer kit, dashboard): bundled for the browser, shares nothing with the daemon's code.
  web: [],
  cli: ['*'],
  'main.ts': ['*'],
};
const TRANSPORTS = ['screencast', 'webrtc', 'vnc'];

/**
 * Every module specifier in a TypeScript source: static imports and re-exports (`import x
 * from`, `import 'x'`, `export {a} from`, `export * from`, across lines, either quote) and
 * dynamic `import('x')` with a literal. `type` says it is erased at run time (`import type`,
 * `export type`); it still counts, for layers and cycles alike (a type is a dependency of the
 * design). Comments are skipped.
 */
export function specifiers(source) {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' ')).replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
  const out = [];
  const q = `(?:'([^'\\n]+)'|"([^"\\n]+)")`;
  const staticRe = new RegExp(`(?:^|[;}\\s])(import|export)(\\s+type)?\\s*(?:[\\w*{}\\s,$]*?\\s*from\\s*)?${q}`, 'g');
  for (const m of code.matchAll(staticRe)) {
    // Only names, braces, commas and `*` may stand between the keyword and `from`, so
    // `export const x = 'a'` is not taken for a re-export.
    out.push({ spec: m[3] ?? m[4], type: Boolean(m[2]), dynamic: false });
  }
  const dynamicRe = new RegExp(`\\bimport\\s*\\(\\s*${q}\\s*\\)`, 'g');
  for (const m of code.matchAll(dynamicRe)) out.push({ spec: m[1] ?? m[2], type: false, dynamic: true });
  return out;
}

/**
 * Checks a set of sources, `{ [pathUnderSrc]: text }` (paths with '/'), and returns the
 * problems found, one line each.
 */
export function check(sources) {
  const problems = [];
  const layerOf = (path) => path.split('/')[0];
  const graph = new Map();
  for (const [path, text] of Object.entries(sources)) {
    const from = layerOf(path);
    const allowed = ALLOWED[from];
    if (!allowed) problems.push(`${path}: layer "${from}" is not in scripts/check-imports.mjs ALLOWED (add it with what it may import)`);
    const edges = [];
    for (const { spec, type } of specifiers(text)) {
      if (!spec.startsWith('.')) continue; // packages and node: builtins
      const target = resolve('/', dirname(path), spec).slice(1).split(sep).join('/');
      if (target.startsWith('..') || !target) continue;
      const to = layerOf(target);
      if (to !== from && allowed && !allowed.includes('*') && !allowed.includes(to)) {
        problems.push(`${path} imports ${spec} (${from} may not depend on ${to})`);
      }
      const [, sub] = path.split('/');
      const [tLayer, tSub] = target.split('/');
      if (from === 'liveview' && tLayer === 'liveview' && TRANSPORTS.includes(sub) && TRANSPORTS.includes(tSub) && sub !== tSub && target.split('/').length > 2) {
        problems.push(`${path} imports ${spec} (live view transports never import each other)`);
      }
      edges.push(target.replace(/\.js$/, '.ts'));
    }
    graph.set(path, edges);
  }
  for (const cycle of cycles(graph)) problems.push(`import cycle: ${cycle.join(' -> ')}`);
  return problems;
}

/** Each cycle of imports once (DFS, reported at the edge that closes it). */
function cycles(graph) {
  const found = [];
  const state = new Map(); // path -> 1 visiting, 2 done
  const stack = [];
  const visit = (node) => {
    state.set(node, 1);
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (!graph.has(next)) continue;
      if (state.get(next) === 1) found.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 2);
  };
  for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node);
  return found;
}

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const SRC = resolve('src');
  const sources = {};
  for (const f of files(SRC)) sources[relative(SRC, f).split(sep).join('/')] = readFileSync(f, 'utf8');
  const problems = check(sources);
  if (problems.length) {
    console.error('wrong-way imports:\n  ' + problems.join('\n  '));
    process.exit(1);
  }
}
