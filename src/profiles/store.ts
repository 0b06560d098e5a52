import { constants } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readFile, rm, writeFile, rename } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { AuditInput } from '../audit/log.js';
import type { Logger } from '../util/logger.js';
import { HandoffError } from '../util/errors.js';
import { PROFILE_NAME_RE, validProfileName } from './name.js';
import { sealDir, unsealFile } from './archive.js';

/** API.md 4 `GET /profiles` entry. */
export interface ProfileInfo {
  name: string;
  /** Bytes on disk: the user-data dir, or the sealed file while it is sealed. */
  size: number;
  created_at: string;
  last_used_at: string | null;
  /** The session using it now, else the last one that did. */
  session_id: string | null;
}

interface Meta {
  created_at: string;
  last_used_at: string | null;
  session_id: string | null;
  size: number;
}

export interface ProfileHolder {
  sessionId: string;
  runId: string;
}

/** What a session gets from an opened profile. */
export interface OpenedProfile {
  /** Chromium's --user-data-dir; it survives the session. */
  dir: string;
  /** The page URLs open when the profile's last session stopped (oldest tab first). */
  lastTabs: string[];
  /** The session that used the profile last (its tabs are that session's). */
  lastSessionId: string | null;
  /** How long opening took (unsealing included). */
  openMs: number;
}

const USER_DATA = 'user-data';
const SEALED = 'user-data.sealed';
const META = 'meta.json';
/** The daemon's own note inside the user-data dir (so it is sealed with it): the last tabs. */
const TABS_FILE = 'handoff-tabs.json';
const MAX_TABS = 20;
const MAX_TAB_URL = 2048;
const MAX_SMALL_FILE = 64 * 1024;

/**
 * Persistent browser profiles under `<state dir>/profiles/NAME/` (0700): `user-data/` is
 * Chromium's user-data dir while a session uses it (and always when no key is set);
 * with a key it is sealed into `user-data.sealed` (archive.ts) whenever no session uses it,
 * so no readable cookie file is left at rest. One live session per profile: `claim` is
 * synchronous, so of two concurrent creates exactly one gets it. Disk operations on one
 * profile (open, seal, delete) run one after another.
 */
export class ProfileStore {
  private readonly holders = new Map<string, ProfileHolder>();
  private readonly ops = new Map<string, Promise<unknown>>();

  private constructor(
    readonly root: string,
    private readonly key: Buffer | null,
    private readonly audit: { append(row: AuditInput): void } | null,
    private readonly log: Logger,
  ) {}

  /**
   * Opens the store, and tidies what a killed daemon left: half-written files go, a profile
   * both sealed and plain keeps the sealed copy (it is never older), and with a key every
   * plain profile is sealed.
   */
  static async open(o: { root: string; key: Buffer | null; audit?: { append(row: AuditInput): void } | null; logger: Logger }): Promise<ProfileStore> {
    await mkdir(o.root, { recursive: true, mode: 0o700 });
    await chmod(o.root, 0o700);
    const store = new ProfileStore(o.root, o.key, o.audit ?? null, o.logger);
    for (const name of await store.names()) {
      const dir = store.dirOf(name);
      await rm(join(dir, `${SEALED}.tmp`), { force: true });
      await rm(join(dir, `${USER_DATA}.unsealing`), { recursive: true, force: true });
      const sealed = await exists(join(dir, SEALED));
      const plain = await exists(join(dir, USER_DATA));
      if (sealed && plain) await rm(join(dir, USER_DATA), { recursive: true, force: true });
      else if (plain && o.key) {
        await sealDir(join(dir, USER_DATA), join(dir, SEALED), o.key);
        await rm(join(dir, USER_DATA), { recursive: true, force: true });
        o.logger.info('sealed a profile left plain', { profile: name });
      }
    }
    return store;
  }

  get encrypted(): boolean {
    return this.key !== null;
  }

  /** The session holding `name`, if any. */
  holderOf(name: string): ProfileHolder | null {
    return this.holders.get(name) ?? null;
  }

  /** Claims `name` for a session, or throws 409 profile_in_use naming the session that holds it. */
  claim(name: string, holder: ProfileHolder): ProfileClaim {
    validProfileName(name);
    const held = this.holders.get(name);
    if (held) throw new HandoffError('profile_in_use', `profile ${name} is in use by session ${held.sessionId}`, { session_id: held.sessionId });
    this.holders.set(name, holder);
    return new ProfileClaim(this, name, holder);
  }

  async list(): Promise<ProfileInfo[]> {
    const out: ProfileInfo[] = [];
    for (const name of await this.names()) {
      const meta = await this.readMeta(name);
      if (!meta) continue;
      out.push({ name, size: meta.size, created_at: meta.created_at, last_used_at: meta.last_used_at, session_id: this.holders.get(name)?.sessionId ?? meta.session_id });
    }
    return out;
  }

  /** Deletes a profile and all its data; 409 while a session uses it, 404 when there is none. */
  async delete(name: string): Promise<void> {
    validProfileName(name);
    const held = this.holders.get(name);
    if (held) throw new HandoffError('profile_in_use', `profile ${name} is in use by session ${held.sessionId}`, { session_id: held.sessionId });
    await this.serial(name, async () => {
      if (!(await exists(this.dirOf(name)))) throw new HandoffError('not_found', `no profile ${name}`);
      await rm(this.dirOf(name), { recursive: true, force: true });
    });
    this.log.info('profile deleted', { profile: name });
  }

  // --- used by ProfileClaim ---

  /** @internal */
  async openFor(name: string, holder: ProfileHolder): Promise<OpenedProfile> {
    return this.serial(name, async () => {
      const t0 = performance.now();
      const dir = this.dirOf(name);
      const userData = join(dir, USER_DATA);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const sealedPath = join(dir, SEALED);
      const sealed = await exists(sealedPath);
      if (sealed) {
        if (!this.key) throw new HandoffError('browser_failed', `profile ${name} is sealed: start the daemon with the --profile-key it was sealed with`);
        await rm(userData, { recursive: true, force: true });
        try {
          await unsealFile(sealedPath, userData, this.key);
        } catch (e) {
          throw new HandoffError('browser_failed', `profile ${name} could not be opened`, {}, (e as Error).message);
        }
        await rm(sealedPath, { force: true });
      } else {
        await mkdir(userData, { recursive: true, mode: 0o700 });
      }
      await prepareForLaunch(userData);
      const lastTabs = await readTabs(userData);
      const now = new Date().toISOString();
      const meta = (await this.readMeta(name)) ?? { created_at: now, last_used_at: null, session_id: null, size: 0 };
      await this.writeMeta(name, { ...meta, last_used_at: now, session_id: holder.sessionId });
      const openMs = Math.round(performance.now() - t0);
      this.audit?.append({ type: 'profile_attached', session_id: holder.sessionId, run_id: holder.runId, detail: { name, sealed, open_ms: openMs } });
      return { dir: userData, lastTabs, lastSessionId: meta.session_id, openMs };
    });
  }

  /**
   * @internal The session's browser has exited: the name is free at once, and the disk work
   * (note its tabs, seal with a key) is queued now, before any next open of the profile.
   */
  releaseFor(name: string, holder: ProfileHolder, opened: Promise<boolean>, tabs: string[] | null): Promise<void> {
    if (this.holders.get(name) === holder) this.holders.delete(name);
    return this.serial(name, async () => {
      if (!(await opened)) return;
      const t0 = performance.now();
      const dir = this.dirOf(name);
      const userData = join(dir, USER_DATA);
      if (!(await exists(userData))) return; // deleted meanwhile: nothing to keep
      if (tabs) await writeOwnFile(join(userData, TABS_FILE), JSON.stringify(tabs.filter((u) => typeof u === 'string' && u.length <= MAX_TAB_URL).slice(0, MAX_TABS)));
      await rm(join(userData, 'tmp'), { recursive: true, force: true });
      let size: number;
      if (this.key) {
        size = (await sealDir(userData, join(dir, SEALED), this.key)).sealedBytes;
        await rm(userData, { recursive: true, force: true });
      } else {
        size = await diskUsage(userData);
      }
      const meta = await this.readMeta(name);
      const now = new Date().toISOString();
      await this.writeMeta(name, { created_at: meta?.created_at ?? now, last_used_at: now, session_id: holder.sessionId, size });
      this.audit?.append({ type: 'profile_released', session_id: holder.sessionId, run_id: holder.runId, detail: { name, size, sealed: !!this.key, seal_ms: Math.round(performance.now() - t0) } });
    });
  }

  private dirOf(name: string): string {
    return join(this.root, validProfileName(name));
  }

  private async names(): Promise<string[]> {
    const out: string[] = [];
    for (const e of await readdir(this.root, { withFileTypes: true })) {
      if (e.isDirectory() && PROFILE_NAME_RE.test(e.name) && !/^\.+$/.test(e.name)) out.push(e.name);
    }
    return out.sort();
  }

  private async readMeta(name: string): Promise<Meta | null> {
    try {
      const text = await readSmall(join(this.dirOf(name), META));
      const m = JSON.parse(text) as Partial<Meta>;
      if (typeof m.created_at !== 'string') return null;
      return { created_at: m.created_at, last_used_at: typeof m.last_used_at === 'string' ? m.last_used_at : null, session_id: typeof m.session_id === 'string' ? m.session_id : null, size: Number(m.size) || 0 };
    } catch {
      return null;
    }
  }

  private async writeMeta(name: string, meta: Meta): Promise<void> {
    const path = join(this.dirOf(name), META);
    await writeFile(`${path}.tmp`, JSON.stringify(meta), { mode: 0o600 });
    await rename(`${path}.tmp`, path);
  }

  /** Runs `fn` after every earlier operation on the same profile has finished. */
  private serial<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.ops.get(name) ?? Promise.resolve();
    const next = prev.catch(() => {}).then(fn);
    this.ops.set(name, next);
    const forget = () => {
      if (this.ops.get(name) === next) this.ops.delete(name);
    };
    next.then(forget, forget);
    return next;
  }
}

/** One session's hold on a profile: open it for the browser, release it once the browser exited. */
export class ProfileClaim {
  private opening?: Promise<OpenedProfile>;
  private releasing?: Promise<void>;

  constructor(
    private readonly store: ProfileStore,
    readonly name: string,
    readonly holder: ProfileHolder,
  ) {}

  open(): Promise<OpenedProfile> {
    if (this.releasing) return Promise.reject(new HandoffError('browser_failed', `profile ${this.name} was released`));
    this.opening ??= this.store.openFor(this.name, this.holder);
    return this.opening;
  }

  /** Idempotent. `tabs`: the page URLs to reopen when this session id resumes. */
  release(tabs: string[] | null = null): Promise<void> {
    this.releasing ??= this.store.releaseFor(this.name, this.holder, this.opening ? this.opening.then(() => true, () => false) : Promise.resolve(false), tabs);
    return this.releasing;
  }
}

/**
 * A user-data dir about to be launched: Chromium's Singleton* links of an earlier run (another
 * pid namespace) must go, and the last exit is marked clean so no "restore pages?" bubble
 * covers the page.
 */
async function prepareForLaunch(userData: string): Promise<void> {
  for (const n of ['SingletonLock', 'SingletonSocket', 'SingletonCookie']) await rm(join(userData, n), { force: true });
  await ownDir(join(userData, 'Default'));
  await ownDir(join(userData, 'tmp'));
  const prefsPath = join(userData, 'Default', 'Preferences');
  let prefs: Record<string, any> = {};
  try {
    prefs = JSON.parse(await readSmall(prefsPath, 16 * 1024 * 1024)) as Record<string, any>;
  } catch {
    // none yet, unreadable, or not a regular file: start from an empty one
  }
  prefs.profile = { ...(prefs.profile ?? {}), exit_type: 'Normal', exited_cleanly: true };
  await writeOwnFile(prefsPath, JSON.stringify(prefs));
}

// The user-data dir is the sandboxed browser's to write: it may have planted symlinks there.
// The daemon never follows one (security review): it reads regular files only (readSmall),
// writes a new file and renames it over the name (which replaces a link, not its target),
// and replaces anything but a real directory where it needs one.

async function writeOwnFile(path: string, data: string): Promise<void> {
  const tmp = `${path}.handoff-${randomBytes(6).toString('hex')}`;
  await writeFile(tmp, data, { mode: 0o600, flag: 'wx' });
  await rename(tmp, path);
}

async function ownDir(path: string): Promise<void> {
  const st = await lstat(path).catch(() => null);
  if (st && !st.isDirectory()) await rm(path, { force: true });
  if (!st || !st.isDirectory()) await mkdir(path, { mode: 0o700 });
}

async function readTabs(userData: string): Promise<string[]> {
  try {
    const v = JSON.parse(await readSmall(join(userData, TABS_FILE))) as unknown;
    return Array.isArray(v) ? v.filter((u): u is string => typeof u === 'string' && u.length <= MAX_TAB_URL).slice(0, MAX_TABS) : [];
  } catch {
    return [];
  }
}

async function readSmall(path: string, max = MAX_SMALL_FILE): Promise<string> {
  const st = await lstat(path);
  if (!st.isFile() || st.size > max) throw new Error(`${path} is not a small file`);
  return readFile(path, { encoding: 'utf8', flag: constants.O_RDONLY | constants.O_NOFOLLOW });
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Bytes of the regular files under `dir` (symlinks not followed). */
async function diskUsage(dir: string): Promise<number> {
  let n = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) n += await diskUsage(p);
    else if (e.isFile()) n += (await lstat(p)).size;
  }
  return n;
}
