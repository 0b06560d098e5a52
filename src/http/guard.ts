import { hostForUrl } from '../util/net.js';
import { isLoopback } from '../config/config.js';

/**
 * Which browsers may talk to the daemon (API.md 2): the Origin policy against web pages in the
 * user's own browser, the Host check against DNS rebinding, and the CORS answer of the routes
 * any site may use (the live view, whose token is the credential, and the kit's files). Pure.
 */
export interface GuardPolicy {
  /** The address the daemon listens on (`--host`). */
  bindHost: string;
  /** `--allowed-origins`: exact `scheme://host[:port]`. */
  allowedOrigins: readonly string[];
  /** `--public-url`: its origin is the daemon's own, its host passes the Host check. */
  publicUrl: URL | null;
}

export interface RequestFacts {
  method: string;
  path: string;
  upgrade: boolean;
  origin?: string;
  host?: string;
  /** The local address the connection arrived on (one of the names the daemon is reached at). */
  localAddress?: string;
  /** Fetch metadata (`Sec-Fetch-Site`, `Sec-Fetch-Mode`), sent by browsers on every request. */
  fetchSite?: string;
  fetchMode?: string;
}

export type Verdict = 'ok' | 'forbidden_host' | 'forbidden_origin';

const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]'];
const STATE_CHANGING = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);

/** `host[:port]` -> the lower-cased name (`[v6]` keeps its brackets), or null when malformed. */
export function hostName(host: string): string | null {
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::\d{1,5})?$/i.exec(host);
  return m ? m[1]!.toLowerCase() : null;
}

/** An address as it appears in a Host header: IPv6 in brackets, v4-mapped v6 as plain v4. */
export function asHostName(address: string): string {
  return hostForUrl(address).toLowerCase();
}

/**
 * The Host check: while bound to loopback only loopback names, the `--host` value and the
 * public URL's host pass (any port); a page on a rebound name (evil.example -> 127.0.0.1) does
 * not. Off loopback the API key protects, so every Host passes. A request without Host is not
 * a browser's (HTTP/1.0 tools) and passes.
 */
export function hostAllowed(policy: GuardPolicy, host: string | undefined): boolean {
  if (!isLoopback(policy.bindHost)) return true;
  if (host === undefined) return true;
  const name = hostName(host);
  if (!name) return false;
  return LOOPBACK_NAMES.includes(name) || name === asHostName(policy.bindHost) || name === policy.publicUrl?.hostname.toLowerCase();
}

/**
 * Whether a browser page of `origin` may change things or open a socket: no Origin (Node
 * clients), `--allowed-origins`, the public URL's origin, or the daemon's own origin (the page
 * came from the host it is talking to, reached by one of the daemon's own names).
 */
export function originAllowed(policy: GuardPolicy, origin: string | undefined, host: string | undefined, localAddress?: string): boolean {
  if (origin === undefined) return true;
  if (policy.allowedOrigins.includes(origin)) return true;
  const o = origin.toLowerCase();
  if (policy.publicUrl && o === policy.publicUrl.origin.toLowerCase()) return true;
  if (!host || !hostAllowed(policy, host)) return false;
  const name = hostName(host);
  const own = [...LOOPBACK_NAMES, asHostName(policy.bindHost), ...(localAddress ? [asHostName(localAddress)] : [])];
  if (!name || !own.includes(name)) return false;
  const h = host.toLowerCase();
  return o === `http://${h}` || o === `https://${h}`;
}

/**
 * Routes any site may call, with CORS headers: the live view (`/live/TOKEN...`, the token is
 * the credential) and the kit's static files (`/hitl-kit.js`, `/assets/...`).
 */
export function isCorsPath(path: string): boolean {
  return path.startsWith('/live/') || path === '/hitl-kit.js' || path.startsWith('/assets/');
}

/**
 * The checks in order: Host (except /health), then Origin. Outside /live/ a foreign Origin is
 * refused whatever the method, so a page cannot read API answers either (a CORS-mode GET);
 * only reads of the kit's files and /health, which any page may load, skip it. Same-origin GETs
 * of the dashboard carry no Origin, nor do Node clients.
 */
export function verdict(policy: GuardPolicy, r: RequestFacts): Verdict {
  if (r.path !== '/health' && !hostAllowed(policy, r.host)) return 'forbidden_host';
  if (r.path.startsWith('/live/')) return 'ok';
  const read = !r.upgrade && !STATE_CHANGING.has(r.method);
  if (read && (r.path === '/health' || isCorsPath(r.path))) return 'ok';
  if (!originAllowed(policy, r.origin, r.host, r.localAddress)) return 'forbidden_origin';
  // A page's own requests (fetch, <img>, XHR) in no-cors mode carry no Origin, but browsers
  // mark them as coming from another site: no API route answers those. Navigations (a link
  // to the dashboard) and Node clients (no Fetch metadata) are unaffected.
  if ((r.fetchSite === 'cross-site' || r.fetchSite === 'same-site') && r.fetchMode !== 'navigate' && !(r.origin && policy.allowedOrigins.includes(r.origin))) {
    return 'forbidden_origin';
  }
  return 'ok';
}

/** Headers every answer on a CORS path carries: any origin may read it, without credentials. */
export const CORS_HEADERS: Readonly<Record<string, string>> = { 'access-control-allow-origin': '*' };

/**
 * The answer to a preflight (OPTIONS) on a CORS path: the kit's methods and its one
 * non-simple header, and Chrome's Private Network Access opt-in when a public site asks.
 */
export function preflightHeaders(requestHeaders: Record<string, string | string[] | undefined>): Record<string, string> {
  return {
    ...CORS_HEADERS,
    'access-control-allow-methods': 'GET, HEAD, POST, OPTIONS',
    'access-control-allow-headers': 'content-type',
    'access-control-max-age': '600',
    ...(requestHeaders['access-control-request-private-network'] === 'true' ? { 'access-control-allow-private-network': 'true' } : {}),
  };
}

/**
 * CORS for a page of an `--allowed-origins` origin on the API (a peer host's dashboard,
 * deploy/README.md): it may read the answers and send `Authorization`. No cookies are used,
 * so no credentials mode. Null for any other origin (they get no CORS headers, as before).
 */
export function allowedOriginCors(policy: GuardPolicy, origin: string | undefined, preflight: boolean): Record<string, string> | null {
  if (origin === undefined || !policy.allowedOrigins.includes(origin)) return null;
  return {
    'access-control-allow-origin': origin,
    vary: 'Origin',
    ...(preflight ? { 'access-control-allow-methods': 'GET, HEAD, POST, DELETE', 'access-control-allow-headers': 'authorization, content-type', 'access-control-max-age': '600' } : {}),
  };
}

/**
 * Content types a page may send cross-site without a preflight (a form post, text/plain). No
 * route takes them, so a body of these types is refused before any handler runs.
 */
export function isSimpleBodyType(contentType: string | undefined): boolean {
  const t = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  return t === 'text/plain' || t === 'application/x-www-form-urlencoded' || t === 'multipart/form-data';
}

/** `Origin` as given, cut to a printable prefix for messages and logs. */
export function describeOrigin(origin: string): string {
  return origin.replace(/[^\x20-\x7e]/g, '?').slice(0, 120);
}
