import { join } from 'node:path';
import { HandoffError } from '../util/errors.js';
import { parseCidrList, type Cidr } from '../util/cidr.js';
import { validProfileName } from '../profiles/name.js';

export const SESSION_ID_RE = /^[A-Za-z0-9._-]{1,128}$/;
const MAX_VALUE_LENGTH = 1024;

export interface SessionParams {
  width: number;
  height: number;
  /** Idle seconds before an unattached session is stopped. */
  timeoutS: number;
  enableVnc: boolean;
  vncPassword: string | null;
  enableRtc: boolean;
  rtcUsername: string | null;
  rtcPassword: string | null;
  debug: boolean;
  hitlAllowedNetworks: Cidr[] | null;
  /** API.md 3.1 `debug_port`: open a Chrome-compatible loopback port for this session. */
  debugPort: boolean;
  /** API.md 3.1 `profile`: the persistent profile the browser runs on; null: a fresh one. */
  profile: string | null;
}

/** Creation parameters of API.md 3.1, validated; unknown parameters are ignored. */
export function parseSessionParams(q: URLSearchParams, overrides: { timeoutS?: number } = {}): SessionParams {
  for (const [k, v] of q) if (v.length > MAX_VALUE_LENGTH) bad(`parameter ${k} is longer than ${MAX_VALUE_LENGTH} characters`);
  const enableVnc = bool(q, 'enable_vnc', false);
  const vncPassword = enableVnc ? validVncPassword(q.get('vnc_password')) : null;
  const enableRtc = bool(q, 'enable_rtc', false);
  const rtcPassword = q.get('rtc_password') || null;
  if (enableRtc && !rtcPassword) bad('enable_rtc needs an rtc_password');
  const networks = q.get('hitl_allowed_networks');
  let hitlAllowedNetworks: Cidr[] | null = null;
  if (networks) {
    try {
      hitlAllowedNetworks = parseCidrList(networks);
    } catch (e) {
      bad(`hitl_allowed_networks: ${(e as Error).message}`);
    }
  }
  const timeoutS = int(q, 'timeout', 900, 1, 3600);
  return {
    width: int(q, 'width', 1280, 320, 3840),
    height: int(q, 'height', 720, 240, 2160),
    // Validated even when overridden (Cloudflare's keep_alive): a bad value is still a 400.
    timeoutS: overrides.timeoutS ?? timeoutS,
    enableVnc,
    vncPassword,
    enableRtc,
    rtcUsername: enableRtc ? q.get('rtc_username') || null : null,
    rtcPassword: enableRtc ? rtcPassword : null,
    debug: bool(q, 'debug', false),
    hitlAllowedNetworks,
    debugPort: bool(q, 'debug_port', false),
    profile: profileParam(q.get('profile')),
  };
}

/** API.md 3.1 `profile`: a valid name or none. */
function profileParam(v: string | null): string | null {
  if (!v) return null;
  return validProfileName(v);
}

/**
 * VNC clients turn a password into bytes differently beyond ASCII (UTF-8 clients such as
 * TigerVNC send UTF-8, noVNC one byte per character code), and the server accepts both (see
 * liveview/vnc/des.ts). Only characters both carry the same way for everyone are allowed:
 * printable ASCII and printable Latin-1 (U+00A0-U+00FF). Control characters cannot be typed
 * into a password prompt; characters past U+00FF have no one-byte form for noVNC to send.
 */
export function validVncPassword(password: string | null): string {
  if (!password || password.length < 8) bad('enable_vnc needs a vnc_password of at least 8 characters');
  if (!/^[\u0020-\u007e\u00a0-\u00ff]+$/.test(password)) {
    bad(
      'vnc_password may contain only printable ASCII and Latin-1 characters (U+0020-U+007E, U+00A0-U+00FF): VNC clients send other characters differently or not at all',
    );
  }
  return password;
}

/** `auto_close` is read on every connect, not only at creation (API.md 3.1). */
export function parseAutoClose(q: URLSearchParams, fallback: boolean): boolean {
  return bool(q, 'auto_close', fallback);
}

/**
 * The one session id check (API.md 3.1), for every entry point: `[A-Za-z0-9._-]{1,128}`, and
 * not only dots, so an id never names the current or a parent directory.
 */
export function validSessionId(id: string): string {
  if (!SESSION_ID_RE.test(id)) bad('session id must be 1-128 characters of A-Z a-z 0-9 . _ -');
  if (/^\.+$/.test(id)) bad('session id must not consist only of dots');
  return id;
}

/** A session's own directory under `root` (downloads, recordings, uploads): always a child of it. */
export function sessionDir(root: string, id: string): string {
  return join(root, validSessionId(id));
}

function bad(message: string): never {
  throw new HandoffError('bad_request', message);
}

export function bool(q: URLSearchParams, name: string, fallback: boolean): boolean {
  const v = q.get(name);
  if (v === null || v === '') return fallback;
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  bad(`${name} must be true or false, got "${v.slice(0, 40)}"`);
}

export function int(q: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const v = q.get(name);
  if (v === null || v === '') return fallback;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) bad(`${name} must be a whole number from ${min} to ${max}, got "${v.slice(0, 40)}"`);
  return n;
}
