// Fails the build when a module imports against DESIGN.md's dependency direction.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, dirname, resolve } from 'node:path';

const SRC = resolve('src');
// layer -> layers it may import (besides itself)
const ALLOWED = {
  util: [],
  types: [],
  config: ['util'],
  display: ['util', 'config'],
  browser: ['util', 'config'],
  cdp: ['util', 'config'],
  audit: ['util', 'config'],
  // Counters only (src/metrics/prometheus.ts, restarts): no layer above.
  metrics: ['util', 'audit'],
  liveview: ['display', 'util', 'config', 'metrics'],
  sessions: ['util', 'config', 'display', 'browser', 'cdp', 'audit', 'liveview'],
  http: ['sessions', 'audit', 'util', 'config', 'metrics'],
  // MCP is another front door beside http: its /mcp route and helpers come from there.
  mcp: ['http', 'sessions', 'util', 'config'],
  cli: ['*'],
  'main.ts': ['*'],
};

function* files(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* files(p);
    else if (p.endsWith('.ts')) yield p;
  }
}

const layerOf = (file) => relative(SRC, file).split('/')[0];
const problems = [];
for (const file of files(SRC)) {
  const from = layerOf(file);
  const allowed = ALLOWED[from];
  for (const m of readFileSync(file, 'utf8').matchAll(/from '(\.[^']+)'/g)) {
    const to = layerOf(resolve(dirname(file), m[1]));
    if (to === from || allowed?.includes('*') || allowed?.includes(to)) continue;
    // transports never import each other
    problems.push(`${relative(SRC, file)} imports ${m[1]} (${from} may not depend on ${to})`);
  }
  if (from === 'liveview') {
    const sub = relative(SRC, file).split('/')[1];
    for (const m of readFileSync(file, 'utf8').matchAll(/from '(\.[^']+)'/g)) {
      const target = relative(SRC, resolve(dirname(file), m[1])).split('/');
      if (target[0] === 'liveview' && target.length > 2 && ['screencast', 'webrtc', 'vnc'].includes(sub) && target[1] !== sub && ['screencast', 'webrtc', 'vnc'].includes(target[1])) {
        problems.push(`${relative(SRC, file)} imports ${m[1]} (live view transports never import each other)`);
      }
    }
  }
}
if (problems.length) {
  console.error('wrong-way imports:\n  ' + problems.join('\n  '));
  process.exit(1);
}
