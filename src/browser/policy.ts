import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The managed policy every session's Chromium runs under: the daemon itself is off limits.
 * The sandbox shares the host network, so without it a page (or whoever drives the session)
 * could open `http://127.0.0.1:PORT/session/OTHER/...` or the dashboard, whose origin is the
 * daemon's own. Debian's Chromium reads /etc/chromium/policies/managed/*.json; the sandbox
 * binds this file there (and nothing else of the host's /etc/chromium).
 */

/** Where the daemon writes it: in the state dir, rewritten at each start (port 0 picks a new port). */
export function chromiumPolicyPath(stateDir: string): string {
  return join(stateDir, 'chromium-policy.json');
}

/** Where the sandbox puts it. */
export const MANAGED_POLICY_FILE = '/etc/chromium/policies/managed/handoff.json';

/**
 * Browser-internal pages no session needs and a human must not reach (security review: without
 * --kiosk a human could briefly leave fullscreen and use the address bar; Ctrl+H and friends
 * opened these under kiosk too): settings, saved passwords, extensions, flags, history and the
 * bookmark manager (a way to any URL), DevTools' frontend (F12 or Inspect opens a blocked page;
 * DeveloperToolsAvailability 2 would also hide every page from the daemon's own DevTools pipe),
 * view-source.
 */
const INTERNAL_PAGES = ['chrome://*', 'chrome-untrusted://*', 'devtools://*', 'view-source:*'];

export interface ChromiumPolicy {
  URLBlocklist: string[];
  AllowFileSelectionDialogs: false;
  /** Ctrl+T opens a blank tab, not the (blocked) chrome:// new tab page. */
  NewTabPageLocation: 'about:blank';
  BrowserGuestModeEnabled: false;
  BrowserAddPersonEnabled: false;
  ExtensionInstallBlocklist: ['*'];
}

/**
 * URLBlocklist filters (Chromium's "scheme://host:port/path" format, every part optional):
 * the daemon's port on every host (127.0.0.1, localhost, [::1], a LAN address, a name that
 * resolves to any of them), the whole host of --public-url (its proxy reaches the daemon), and
 * the browser's internal pages. file:// stays open to the agent: the sandbox shows the browser
 * only system files and the session's own (test/integration/security-sandbox.test.ts).
 */
export function chromiumPolicy(port: number, publicUrl: URL | null): ChromiumPolicy {
  const list = [`*:${port}`];
  // A leading dot: that host only, not its subdomains (other sites may live there).
  if (publicUrl) list.push(`.${publicUrl.hostname}`);
  list.push(...INTERNAL_PAGES);
  return {
    URLBlocklist: list,
    // No native open/save dialog ever shows the host's files: file inputs are answered through
    // DevTools interception (browser/control.ts), which comes before this check; a chooser it
    // does not see (a cross-origin iframe's, Ctrl+O) is refused here (security review).
    AllowFileSelectionDialogs: false,
    NewTabPageLocation: 'about:blank',
    BrowserGuestModeEnabled: false,
    BrowserAddPersonEnabled: false,
    ExtensionInstallBlocklist: ['*'],
  };
}

/** Writes the policy for this daemon's port, atomically (a session may be starting). */
export function writeChromiumPolicy(stateDir: string, port: number, publicUrl: URL | null): string {
  const path = chromiumPolicyPath(stateDir);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(chromiumPolicy(port, publicUrl), null, 2) + '\n', { mode: 0o644 });
  renameSync(tmp, path);
  return path;
}
