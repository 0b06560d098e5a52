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
 * URLBlocklist filters (Chromium's "scheme://host:port/path" format, every part optional):
 * the daemon's port on every host (127.0.0.1, localhost, [::1], a LAN address, a name that
 * resolves to any of them), and the whole host of --public-url (its proxy reaches the daemon).
 */
export function chromiumPolicy(port: number, publicUrl: URL | null): { URLBlocklist: string[]; AllowFileSelectionDialogs: false } {
  const list = [`*:${port}`];
  // A leading dot: that host only, not its subdomains (other sites may live there).
  if (publicUrl) list.push(`.${publicUrl.hostname}`);
  // No native open/save dialog ever shows the host's files: file inputs are answered through
  // DevTools interception (browser/control.ts), which comes before this check; a chooser it
  // does not see (a cross-origin iframe's, Ctrl+O) is refused here (security review).
  return { URLBlocklist: list, AllowFileSelectionDialogs: false };
}

/** Writes the policy for this daemon's port, atomically (a session may be starting). */
export function writeChromiumPolicy(stateDir: string, port: number, publicUrl: URL | null): string {
  const path = chromiumPolicyPath(stateDir);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(chromiumPolicy(port, publicUrl), null, 2) + '\n', { mode: 0o644 });
  renameSync(tmp, path);
  return path;
}
