// Bundles the browser side (src/web, TypeScript) into the served assets: dist/http/assets/
// hitl-kit.js (served as /hitl-kit.js), kit-webrtc.js and dashboard.js. Type-checking is tsc's job
// (npm run typecheck); esbuild only strips types and bundles.
import { build } from 'esbuild';

const OUT = 'dist/http/assets';
const common = { bundle: true, target: 'es2020', charset: 'utf8', legalComments: 'inline', logLevel: 'warning', sourcemap: false };

await Promise.all([
  // Classic scripts: pages and other origins load them with <script src>, no module needed.
  build({ ...common, entryPoints: ['src/web/kit/index.ts'], format: 'iife', outfile: `${OUT}/hitl-kit.js` }),
  build({ ...common, entryPoints: ['src/web/webrtc/index.ts'], format: 'iife', outfile: `${OUT}/kit-webrtc.js` }),
  build({ ...common, entryPoints: ['src/web/dashboard/main.ts'], format: 'esm', outfile: `${OUT}/dashboard.js` }),
]);
