import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script without types
import { check, specifiers } from '../../../scripts/check-imports.mjs';

const specs = (src: string) => (specifiers(src) as { spec: string; type: boolean; dynamic: boolean }[]).map((s) => s.spec);

describe('check-imports: what counts as an import', () => {
  it('finds static imports, re-exports and dynamic import() with either quote, across lines', () => {
    const src = [
      `import { a } from '../util/a.js';`,
      `import b from "../util/b.js";`,
      `import '../util/side-effect.js';`,
      `import type { T } from '../util/t.js';`,
      `import {`,
      `  x,`,
      `  y,`,
      `} from '../util/multi.js';`,
      `export { c } from '../util/c.js';`,
      `export * from "../util/d.js";`,
      `export type { E } from '../util/e.js';`,
      `const m = await import('../util/lazy.js');`,
      `const n = await import( "../util/lazy2.js" );`,
    ].join('\n');
    expect(specs(src)).toEqual([
      '../util/a.js',
      '../util/b.js',
      '../util/side-effect.js',
      '../util/t.js',
      '../util/multi.js',
      '../util/c.js',
      '../util/d.js',
      '../util/e.js',
      '../util/lazy.js',
      '../util/lazy2.js',
    ]);
    expect((specifiers(src) as { type: boolean }[]).filter((s) => s.type)).toHaveLength(2);
  });

  it('ignores strings that are not imports and commented-out imports', () => {
    const src = [
      `export const x = '../http/server.js';`,
      `const s = "from '../http/server.js'";`,
      `// import { no } from '../http/server.js';`,
      `/* import { no } from '../http/server.js'; */`,
      `const url = 'http://example.com/x'; // from '../http/y.js'`,
    ].join('\n');
    expect(specs(src)).toEqual([]);
  });
});

describe('check-imports: the rules', () => {
  it('passes imports along the dependency direction and packages', () => {
    expect(
      check({
        'sessions/session.ts': `import { a } from '../display/xvfb.js';\nimport { WebSocket } from 'ws';\nimport { x } from 'node:fs';`,
        'display/xvfb.ts': `import { b } from "../util/process.js";`,
        'util/process.ts': ``,
      }),
    ).toEqual([]);
  });

  it('fails a wrong-way import in every form', () => {
    const problems = check({
      'display/a.ts': `const m = await import("../sessions/session.js");`,
      'liveview/b.ts': `export { S } from '../sessions/session.js';`,
      'http/c.ts': `import type { X } from "../liveview/types.js";`,
      'sessions/session.ts': ``,
      'liveview/types.ts': ``,
    });
    expect(problems).toEqual([
      'display/a.ts imports ../sessions/session.js (display may not depend on sessions)',
      'liveview/b.ts imports ../sessions/session.js (liveview may not depend on sessions)',
      'http/c.ts imports ../liveview/types.js (http may not depend on liveview)',
    ]);
  });

  it('fails live view transports importing each other, and allows their shared modules', () => {
    const problems = check({
      'liveview/webrtc/hub.ts': `import { a } from '../screencast/viewer.js';\nimport { b } from '../viewer-socket.js';`,
      'liveview/screencast/viewer.ts': ``,
      'liveview/viewer-socket.ts': ``,
    });
    expect(problems).toEqual(['liveview/webrtc/hub.ts imports ../screencast/viewer.js (live view transports never import each other)']);
  });

  it('fails import cycles, type-only ones too, and an undeclared layer', () => {
    const problems = check({
      'sessions/session.ts': `import { Viewer } from './viewer.js';`,
      'sessions/viewer.ts': `import type { Session } from './session.js';`,
      'gadgets/x.ts': ``,
    });
    expect(problems).toEqual([
      'gadgets/x.ts: layer "gadgets" is not in scripts/check-imports.mjs ALLOWED (add it with what it may import)',
      'import cycle: sessions/session.ts -> sessions/viewer.ts -> sessions/session.ts',
    ]);
  });
});
