import { readFile, stat } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerResponse } from 'node:http';
import { HandoffError } from '../../util/errors.js';
import type { HttpServer, RequestContext } from '../server.js';

/** `src/http/assets` under tsx, `dist/http/assets` after the build copies it to the same place. */
export const ASSETS_DIR = fileURLToPath(new URL('../assets/', import.meta.url));

/**
 * The browser code bundled from src/web by the build (scripts/build-web.mjs): beside the other
 * assets in dist/, and read from dist/ when the daemon runs from src/ (tests under tsx).
 */
const BUNDLES = new Set(['hitl-kit.js', 'kit-webrtc.js', 'dashboard.js']);
const BUNDLE_DIR = existsSync(join(ASSETS_DIR, 'hitl-kit.js')) ? ASSETS_DIR : fileURLToPath(new URL('../../../dist/http/assets/', import.meta.url));

const TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.html': 'text/html; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.wasm': 'application/wasm',
  '.md': 'text/plain; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * The viewer and dashboard files, and noVNC for the in-browser VNC tab. All open (API.md 2): they
 * are the same for everyone and carry no secrets; the pages send the key or token themselves.
 */
export function assetRoutes(http: HttpServer): void {
  const novnc = novncRoot();
  http.route('GET', '/', (ctx, res) => sendFile(ctx, res, join(ASSETS_DIR, 'dashboard.html')), true);
  http.route('GET', '/hitl-kit.js', (ctx, res) => sendFile(ctx, res, join(BUNDLE_DIR, 'hitl-kit.js')), true);
  http.route('GET', '/assets/novnc/:path*', (ctx, res) => sendFile(ctx, res, inside(novnc, ctx.params.path!)), true);
  http.route('GET', '/assets/:name', (ctx, res) => {
    const name = ctx.params.name!;
    return sendFile(ctx, res, inside(BUNDLES.has(name) ? BUNDLE_DIR : ASSETS_DIR, name));
  }, true);
}

/** The @novnc/novnc package directory (its `exports` hides package.json, so walk up from the entry). */
function novncRoot(): string | null {
  let entry: string;
  try {
    entry = createRequire(import.meta.url).resolve('@novnc/novnc');
  } catch {
    return null;
  }
  for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && dir.endsWith(join('@novnc', 'novnc'))) return dir;
  }
  return null;
}

/** `rel` resolved under `root`, or null when it would leave it. */
function inside(root: string | null, rel: string): string | null {
  if (!root) return null;
  const base = resolve(root);
  const file = resolve(base, rel);
  return file.startsWith(base + sep) ? file : null;
}

async function sendFile(ctx: RequestContext, res: ServerResponse, file: string | null): Promise<void> {
  const type = file && TYPES[extname(file).toLowerCase()];
  const info = type ? await stat(file).catch(() => null) : null;
  if (!file || !type || !info?.isFile()) throw new HandoffError('not_found', `no such file: ${ctx.url.pathname.slice(0, 200)}`);
  const etag = `"${info.size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
  const headers = {
    'content-type': type,
    // Revalidate every time: cheap with the ETag, and an upgraded daemon never serves a stale viewer.
    'cache-control': 'no-cache',
    etag,
    'x-content-type-options': 'nosniff',
    // CORS headers (another origin embeds the kit and imports noVNC) come from the server for
    // every /hitl-kit.js and /assets/ answer: see guard.ts isCorsPath.
  };
  if (ctx.req.headers['if-none-match'] === etag) {
    res.writeHead(304, headers);
    res.end();
    return;
  }
  const body = await readFile(file);
  res.writeHead(200, { ...headers, 'content-length': body.length });
  res.end(body);
}
