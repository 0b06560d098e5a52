import { isIP } from 'node:net';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { parseCidrList, type Cidr } from '../util/cidr.js';

export interface Config {
  host: string;
  port: number;
  /** 0 turns the VNC listener off. */
  vncPort: number;
  rtcPorts: { min: number; max: number } | null;
  /** ICE servers for viewers behind NAT; none by default (air-gapped hosts). */
  iceServers: { urls: string; username?: string; credential?: string }[];
  stateDir: string;
  apiKey: string | null;
  maxSessions: number;
  webhook: string | null;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  chromiumPath: string;
  xvfbPath: string;
  /** Where Xvfb framebuffers live: tmpfs, so reading a frame is a memory copy. */
  framebufferDir: string;
  /** How long a live view link may wait before it is first opened. */
  liveLinkTtlMs: number;
  /** Seconds a stopped session keeps answering GET /session/ID. */
  stoppedRetentionS: number;
  /** Browser origins (exact `scheme://host[:port]`) allowed besides the daemon's own (API.md 2). */
  allowedOrigins: string[];
  /** The URL users reach this host at: links and vnc_url are built from it; its host passes the Host check. */
  publicUrl: URL | null;
  /** `--trusted-proxies`: reverse proxies whose X-Forwarded-For names the client (util/net.ts). */
  trustedProxies: Cidr[];
  /** HMAC-SHA256 key for webhook signatures; null sends them unsigned. */
  webhookSecret: string | null;
  /** An agent socket that answers no WebSocket ping for this long is detached. */
  agentKeepaliveMs: number;
  /** How long a handoff a live link started waits for its human to come back (reload, drop). */
  handoffGraceMs: number;
  /** Spare sessions kept started for default-size creates (API.md 1 `--warm`); 0 = none. */
  warm: number;
  /** Seals persistent profiles at rest: 64+ hex characters, or a key file (profiles/key.ts). */
  profileKey: string | null;
  profileKeyFile: string | null;
  /** Download quotas (MB): per session, and all sessions' downloads together. */
  maxDownloadMb: number;
  maxDownloadTotalMb: number;
  /** A debug recording stops growing here (MB). */
  maxRecordingMb: number;
  /** Files of stopped sessions are removed this long after their last write; 0 keeps them. */
  retentionMs: number;
  /** New sessions are refused below this much free space (MB); null: 5% of the disk, at most 1024. */
  minFreeMb: number | null;
  /** `--peer`: other hosts' URLs (origins) the dashboard shows beside this one (deploy/README.md). */
  peers: string[];
}

export class ConfigError extends Error {}

const DEFAULTS = {
  host: '127.0.0.1',
  port: 9222,
  vncPort: 5901,
  maxSessions: 8,
  logLevel: 'info',
  chromiumPath: '/usr/lib/chromium/chromium',
  xvfbPath: 'Xvfb',
  framebufferDir: '/dev/shm',
  liveLinkTtlMs: 5 * 60_000,
  stoppedRetentionS: 3600,
  agentKeepaliveS: 10,
  handoffGraceS: 15,
  warm: 1,
  maxDownloadMb: 1024,
  maxDownloadTotalMb: 10240,
  maxRecordingMb: 1024,
  retention: '7d',
} as const;

/** Flag name -> config key, env name, kind. One table so --help, env and file agree. */
export const OPTIONS = [
  { flag: 'host', env: 'HANDOFF_HOST', kind: 'string', help: 'address for HTTP, WebSocket and VNC (default 127.0.0.1)' },
  { flag: 'port', env: 'HANDOFF_PORT', kind: 'port', help: 'HTTP + WebSocket port; 0 picks a free one (default 9222)' },
  { flag: 'vnc-port', env: 'HANDOFF_VNC_PORT', kind: 'port', help: 'RFB/VNC port, 0 = off (default 5901)' },
  { flag: 'rtc-ports', env: 'HANDOFF_RTC_PORTS', kind: 'range', help: 'UDP port range for WebRTC, e.g. 40000-40100 (default ephemeral)' },
  { flag: 'stun', env: 'HANDOFF_STUN', kind: 'string', help: 'STUN server URLs for WebRTC, comma separated (default none)' },
  { flag: 'turn', env: 'HANDOFF_TURN', kind: 'string', help: 'TURN server URL for WebRTC, e.g. turn:host:3478 (default none)' },
  { flag: 'turn-username', env: 'HANDOFF_TURN_USERNAME', kind: 'string', help: 'TURN username' },
  { flag: 'turn-password', env: 'HANDOFF_TURN_PASSWORD', kind: 'string', help: 'TURN password' },
  { flag: 'state-dir', env: 'HANDOFF_STATE_DIR', kind: 'string', help: 'SQLite audit, downloads, recordings (default $XDG_STATE_HOME/handoff)' },
  { flag: 'api-key', env: 'HANDOFF_API_KEY', kind: 'string', help: 'required off loopback; clients send ?api_key= or Authorization: Bearer' },
  { flag: 'max-sessions', env: 'HANDOFF_MAX_SESSIONS', kind: 'int', help: 'concurrent browser sessions (default 8)' },
  { flag: 'webhook', env: 'HANDOFF_WEBHOOK', kind: 'string', help: 'URL that receives handoff notifications (POST JSON)' },
  { flag: 'webhook-secret', env: 'HANDOFF_WEBHOOK_SECRET', kind: 'string', help: 'signs webhook bodies (HMAC-SHA256, X-Handoff-Signature header)' },
  { flag: 'allowed-origins', env: 'HANDOFF_ALLOWED_ORIGINS', kind: 'string', help: 'browser origins allowed to use the API and CDP besides the daemon\'s own, comma separated (e.g. https://ops.example.com)' },
  { flag: 'peer', env: 'HANDOFF_PEER', kind: 'string', help: 'other handoff hosts the dashboard shows beside this one, comma separated URLs (each allows this one in its --allowed-origins)' },
  { flag: 'public-url', env: 'HANDOFF_PUBLIC_URL', kind: 'string', help: 'the URL users reach this host at (behind a proxy): links and vnc_url use it, its host passes the Host check' },
  { flag: 'trusted-proxies', env: 'HANDOFF_TRUSTED_PROXIES', kind: 'string', help: 'reverse proxies (HAProxy, nginx) in front of this host, comma separated addresses or networks: the client address in their X-Forwarded-For is the one audited, throttled and checked against hitl_allowed_networks (default none: the connection\'s own address)' },
  { flag: 'agent-keepalive', env: 'HANDOFF_AGENT_KEEPALIVE', kind: 'int', help: 'seconds an agent socket may go without answering a ping before it is detached, 2-600 (default 10)' },
  { flag: 'handoff-grace', env: 'HANDOFF_HANDOFF_GRACE', kind: 'int', help: 'seconds a live-link handoff waits for its human to come back after a reload or a drop, 1-600 (default 15)' },
  { flag: 'warm', env: 'HANDOFF_WARM', kind: 'int', help: 'spare sessions kept started for default-size creates without a profile (default 1, 0 = off)' },
  { flag: 'profile-key', env: 'HANDOFF_PROFILE_KEY', kind: 'string', help: 'seal persistent profiles at rest (AES-256-GCM) with this key: 64+ hex characters (prefer --profile-key-file)' },
  { flag: 'profile-key-file', env: 'HANDOFF_PROFILE_KEY_FILE', kind: 'string', help: 'the same key from a file of 32-4096 bytes, mode 0600' },
  { flag: 'max-download-mb', env: 'HANDOFF_MAX_DOWNLOAD_MB', kind: 'int', help: 'download quota per session in MB; a download past it is cancelled (default 1024)' },
  { flag: 'max-download-total-mb', env: 'HANDOFF_MAX_DOWNLOAD_TOTAL_MB', kind: 'int', help: 'download quota of all sessions together in MB (default 10240)' },
  { flag: 'max-recording-mb', env: 'HANDOFF_MAX_RECORDING_MB', kind: 'int', help: 'size cap of one debug recording in MB; it stops growing there (default 1024)' },
  { flag: 'retention', env: 'HANDOFF_RETENTION', kind: 'string', help: 'keep the files of stopped sessions (downloads, uploads, recordings) this long: 90m, 12h, 7d; 0 = forever (default 7d)' },
  { flag: 'min-free-mb', env: 'HANDOFF_MIN_FREE_MB', kind: 'int', help: 'refuse new sessions while the state dir has less free space, in MB; 0 = off (default 5% of the disk, at most 1024)' },
  { flag: 'log-level', env: 'HANDOFF_LOG_LEVEL', kind: 'level', help: 'debug|info|warn|error (default info)' },
  { flag: 'chromium', env: 'HANDOFF_CHROMIUM', kind: 'string', help: `Chromium binary (default ${DEFAULTS.chromiumPath})` },
  { flag: 'live-link-ttl', env: 'HANDOFF_LIVE_LINK_TTL', kind: 'int', help: 'seconds a live view link may wait to be opened, 60-3600 (default 300)' },
  { flag: 'config', env: 'HANDOFF_CONFIG', kind: 'string', help: 'JSON file with any of these options (keys as the flags, e.g. "vnc-port")' },
] as const;

type OptionFlag = (typeof OPTIONS)[number]['flag'];
export type RawOptions = Partial<Record<OptionFlag, string>>;

/** Parses `--flag value` / `--flag=value` pairs (node:util parseArgs); unknown flags are an error. */
export function parseFlags(argv: string[]): RawOptions {
  try {
    const { values } = parseArgs({ args: argv, options: Object.fromEntries(OPTIONS.map((o) => [o.flag, { type: 'string' as const }])), strict: true, allowPositionals: false });
    return values as RawOptions;
  } catch (e) {
    throw new ConfigError(flagError(e as Error & { code?: string }));
  }
}

/** A subcommand's flags and positionals (parseArgs, strict); errors are ConfigErrors in our words. */
export function parseCommandArgs<const O extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: O) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (e) {
    throw new ConfigError(flagError(e as Error));
  }
}

/** parseArgs' errors in our words (the option it names, or the argument). */
export function flagError(e: Error & { code?: string }): string {
  const named = /'(-[^' ]*)/.exec(e.message)?.[1] ?? '';
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${named} (see --help)`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return `${named} needs a value`;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument "${(/'([^']*)'/.exec(e.message)?.[1] ?? '').slice(0, 100)}"`;
    default:
      return e.message;
  }
}

/**
 * Pure: flags beat env, env beats the config file, the file beats defaults. The file's
 * contents are passed in (already read) so nothing here touches the disk or process.env.
 */
export function loadConfig(
  argv: string[],
  env: Record<string, string | undefined>,
  readFile: (path: string) => string = () => {
    throw new ConfigError('no config file reader');
  },
): Readonly<Config> {
  const flags = parseFlags(argv);
  const configPath = flags.config ?? env.HANDOFF_CONFIG;
  let file: RawOptions = {};
  if (configPath) {
    try {
      const parsed = JSON.parse(readFile(configPath)) as Record<string, unknown>;
      for (const [k, v] of Object.entries(parsed)) file[k as OptionFlag] = String(v);
    } catch (e) {
      throw new ConfigError(`config file ${configPath}: ${(e as Error).message}`);
    }
  }
  const pick = (flag: OptionFlag): string | undefined => {
    const opt = OPTIONS.find((o) => o.flag === flag)!;
    return flags[flag] ?? env[opt.env] ?? file[flag];
  };

  const host = pick('host') ?? DEFAULTS.host;
  if (host !== 'localhost' && !isIP(host)) throw new ConfigError(`--host must be an IP address, got "${host}"`);
  const apiKey = pick('api-key') || null;
  if (!isLoopback(host) && !apiKey) {
    throw new ConfigError(`listening on ${host} (not loopback) requires an API key: set --api-key or HANDOFF_API_KEY`);
  }
  const pub = publicUrl(pick('public-url'));
  // Behind a reverse proxy every request comes from loopback with the public Host, so the Host
  // check passes them all: only the API key protects a public URL.
  if (pub && !isLoopback(pub.hostname.replace(/^\[|\]$/g, '')) && !apiKey) {
    throw new ConfigError(`--public-url ${pub.origin} (not loopback) requires an API key: behind a reverse proxy every request looks local; set --api-key or HANDOFF_API_KEY`);
  }
  const stateDir =
    pick('state-dir') ??
    (env.STATE_DIRECTORY // systemd's StateDirectory=
      ? env.STATE_DIRECTORY.split(':')[0]!
      : join(env.XDG_STATE_HOME ?? join(env.HOME ?? '/tmp', '.local', 'state'), 'handoff'));
  const ttl = intIn('live-link-ttl', pick('live-link-ttl'), 60, 3600) ?? DEFAULTS.liveLinkTtlMs / 1000;

  return Object.freeze({
    host,
    port: port('port', pick('port')) ?? DEFAULTS.port,
    vncPort: port('vnc-port', pick('vnc-port')) ?? DEFAULTS.vncPort,
    rtcPorts: range('rtc-ports', pick('rtc-ports')),
    iceServers: iceServers(pick('stun'), pick('turn'), pick('turn-username'), pick('turn-password')),
    stateDir,
    apiKey,
    maxSessions: intIn('max-sessions', pick('max-sessions'), 1, 256) ?? DEFAULTS.maxSessions,
    webhook: pick('webhook') || null,
    logLevel: level(pick('log-level')) ?? DEFAULTS.logLevel,
    chromiumPath: pick('chromium') ?? DEFAULTS.chromiumPath,
    xvfbPath: DEFAULTS.xvfbPath,
    framebufferDir: DEFAULTS.framebufferDir,
    liveLinkTtlMs: ttl * 1000,
    stoppedRetentionS: DEFAULTS.stoppedRetentionS,
    allowedOrigins: origins(pick('allowed-origins')),
    publicUrl: pub,
    trustedProxies: trustedProxies(pick('trusted-proxies')),
    webhookSecret: pick('webhook-secret') || null,
    agentKeepaliveMs: (intIn('agent-keepalive', pick('agent-keepalive'), 2, 600) ?? DEFAULTS.agentKeepaliveS) * 1000,
    handoffGraceMs: (intIn('handoff-grace', pick('handoff-grace'), 1, 600) ?? DEFAULTS.handoffGraceS) * 1000,
    warm: intIn('warm', pick('warm'), 0, 16) ?? DEFAULTS.warm,
    profileKey: pick('profile-key') || null,
    profileKeyFile: pick('profile-key-file') || null,
    maxDownloadMb: intIn('max-download-mb', pick('max-download-mb'), 1, 1 << 20) ?? DEFAULTS.maxDownloadMb,
    maxDownloadTotalMb: intIn('max-download-total-mb', pick('max-download-total-mb'), 1, 1 << 24) ?? DEFAULTS.maxDownloadTotalMb,
    maxRecordingMb: intIn('max-recording-mb', pick('max-recording-mb'), 1, 1 << 20) ?? DEFAULTS.maxRecordingMb,
    retentionMs: duration('retention', pick('retention') ?? DEFAULTS.retention),
    minFreeMb: intIn('min-free-mb', pick('min-free-mb'), 0, 1 << 24) ?? null,
    peers: origins(pick('peer'), 'peer'),
  });
}

/** --trusted-proxies: a network wider than this would believe anyone's X-Forwarded-For. */
const NARROWEST_TRUSTED = { ipv4: 8, ipv6: 32 } as const;

function trustedProxies(v: string | undefined): Cidr[] {
  if (!v) return [];
  let list: Cidr[];
  try {
    list = parseCidrList(v);
  } catch (e) {
    throw new ConfigError(`--trusted-proxies: ${(e as Error).message} (addresses or networks like 10.0.0.0/24, comma separated)`);
  }
  const wide = list.find((n) => n.prefix < NARROWEST_TRUSTED[n.family]);
  if (wide) throw new ConfigError(`--trusted-proxies: ${wide.text} is wider than /${NARROWEST_TRUSTED[wide.family]}: every client in it could name any address in X-Forwarded-For; list the proxies themselves`);
  return list;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

function intIn(name: string, v: string | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`--${name} must be a whole number from ${min} to ${max}, got "${v}"`);
  return n;
}

/** `90m`, `12h`, `7d`, `3600s` or seconds; `0` is forever (README "Disk"). */
function duration(name: string, v: string): number {
  const m = /^(\d{1,9})([smhd]?)$/.exec(v.trim());
  if (!m) throw new ConfigError(`--${name} must look like 90m, 12h or 7d (0 = forever), got "${v}"`);
  return Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'] * 1000;
}

function port(name: string, v: string | undefined): number | undefined {
  return intIn(name, v, 0, 65535);
}

function range(name: string, v: string | undefined): { min: number; max: number } | null {
  if (!v) return null;
  const m = /^(\d+)-(\d+)$/.exec(v);
  const min = Number(m?.[1]);
  const max = Number(m?.[2]);
  if (!m || min < 1 || max > 65535 || min > max) throw new ConfigError(`--${name} must look like 40000-40100, got "${v}"`);
  return { min, max };
}

function iceServers(stun?: string, turn?: string, username?: string, credential?: string): Config['iceServers'] {
  const out: Config['iceServers'] = [];
  for (const url of (stun ?? '').split(',').map((u) => u.trim()).filter(Boolean)) {
    if (!/^stuns?:/.test(url)) throw new ConfigError(`--stun takes stun: URLs, got "${url}"`);
    out.push({ urls: url });
  }
  if (turn) {
    if (!/^turns?:/.test(turn)) throw new ConfigError(`--turn takes a turn: URL, got "${turn}"`);
    out.push({ urls: turn, ...(username ? { username } : {}), ...(credential ? { credential } : {}) });
  }
  return out;
}

function level(v: string | undefined): Config['logLevel'] | undefined {
  if (v === undefined) return undefined;
  if (v === 'debug' || v === 'info' || v === 'warn' || v === 'error') return v;
  throw new ConfigError(`--log-level must be debug, info, warn or error, got "${v}"`);
}

/** Exact origins, as browsers send them: scheme://host[:port], no path. */
function origins(v: string | undefined, flag = 'allowed-origins'): string[] {
  const out: string[] = [];
  for (const o of (v ?? '').split(',').map((x) => x.trim()).filter(Boolean)) {
    let u: URL;
    try {
      u = new URL(o);
    } catch {
      throw new ConfigError(`--${flag} takes origins like https://ops.example.com, got "${o}"`);
    }
    if (!/^https?:$/.test(u.protocol) || u.origin !== o.replace(/\/$/, '')) {
      throw new ConfigError(`--${flag} takes origins like https://ops.example.com (no path), got "${o}"`);
    }
    out.push(u.origin);
  }
  return out;
}

function publicUrl(v: string | undefined): URL | null {
  if (!v) return null;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ConfigError(`--public-url must be a URL like https://handoff.example.com, got "${v}"`);
  }
  if (!/^https?:$/.test(u.protocol) || (u.pathname !== '/' && u.pathname !== '') || u.search || u.username) {
    throw new ConfigError(`--public-url must be http(s)://host[:port] with no path, got "${v}"`);
  }
  return u;
}
