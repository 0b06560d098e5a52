import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import type { Logger } from '../util/logger.js';
import { isAlive } from '../util/process.js';
import type { SessionJournal } from './journal.js';
import type { BrowserPart, DisplayPart, SessionFactories } from './parts.js';
import { sessionDir } from './params.js';

/** The size a spare is started at: API.md 3.1 defaults. */
export const SPARE_WIDTH = 1280;
export const SPARE_HEIGHT = 720;

/** What a session gets from the pool (registry.ts): the spare's parts and where its uploads are seen. */
export interface SpareLease {
  /** The spare's display and browser; the cold factories should the spare fail to start. */
  readonly parts: SessionFactories;
  /** The upload dir at the path the spare's sandbox bound (a link to STATE/uploads/ID on the host). */
  readonly uploadDir: string;
  /** After the session ended and its start settled: closes what it never took, removes the links. */
  release(): void;
}

interface Started {
  display: DisplayPart;
  browser: BrowserPart;
  /** Journal rows of each part's processes, released when the session takes the part (it journals them). */
  rows: { display: number[]; browser: number[] };
}

interface Spare {
  readonly id: string;
  /** STATE/spares/ID: downloads/ and uploads/ here, at the paths its browser's sandbox binds. */
  readonly root: string;
  started: Promise<Started>;
  /** Set once started, while it waits in the pool. */
  parts?: Started;
  claimed: boolean;
  /** Given up, died or closed: never handed out. */
  gone: boolean;
}

/**
 * The warm pool (issue 14, API.md 1 `--warm`): up to `target` spares, each an Xvfb with a
 * Chromium in a fresh profile of its own, started at the default size with nothing attached.
 * A default-size create without a profile takes one synchronously (registry.ts), or the one
 * still starting (it finishes sooner than a cold start begun now would). The pool refills in
 * the background, one start at a time, so a burst of creates does not start a burst of
 * browsers. Spares are journaled (a restarted daemon reaps them), replaced when a process
 * dies, given up for room at the session limit, and closed with the daemon.
 *
 * Dirs: a spare's browser binds STATE/spares/ID/{downloads,uploads} when it starts. Taking
 * it moves them to STATE/downloads/SESSION_ID and STATE/uploads/SESSION_ID (rename: the
 * sandbox's bind follows the directory) and leaves links at the old paths, so the paths the
 * browser knows (its download path, upload paths handed to file inputs) still resolve on the
 * host. Everything keyed on the session id (retention, quotas, the audit) sees a cold
 * session's layout.
 */
export class WarmPool {
  private readonly ready: Spare[] = [];
  private starting: Spare | null = null;
  private startingDone: Promise<void> = Promise.resolve();
  private running = false;
  private closed = false;
  private failures = 0;
  private retryTimer?: NodeJS.Timeout;
  private root = '';

  constructor(
    private readonly o: {
      config: Readonly<Config>;
      parts: SessionFactories;
      journal: SessionJournal;
      logger: Logger;
      /** Processes that may still start: max sessions minus live sessions. */
      room: () => number;
    },
  ) {}

  get target(): number {
    return this.o.config.warm ?? 0;
  }
  /** Spares started and waiting. */
  get spares(): number {
    return this.ready.length;
  }
  /** Spares holding processes for no session: the waiting ones and the one starting unclaimed. */
  get held(): number {
    return this.ready.length + (this.starting && !this.starting.claimed && !this.starting.gone ? 1 : 0);
  }

  /** Whether a create with these parameters may take a spare. */
  serves(p: { width: number; height: number; profile: string | null }): boolean {
    return p.width === SPARE_WIDTH && p.height === SPARE_HEIGHT && !p.profile;
  }

  /** Starts filling (once the browser policy is written). One daemon per state dir: what is in spares/ is stale. */
  start(): void {
    this.root = join(this.o.config.stateDir, 'spares');
    rmSync(this.root, { recursive: true, force: true });
    this.running = true;
    this.refill();
  }

  /** A spare for session `sessionId`, or null (cold path). Synchronous. */
  take(sessionId: string): SpareLease | null {
    if (!this.running || this.closed) return null;
    // A resumed id whose dirs hold files keeps them: cold path, as before the pool.
    const downloads = sessionDir(join(this.o.config.stateDir, 'downloads'), sessionId);
    const uploads = sessionDir(join(this.o.config.stateDir, 'uploads'), sessionId);
    if (!emptyOrAbsent(downloads) || !emptyOrAbsent(uploads)) return null;
    let s: Spare | undefined;
    while ((s = this.ready.shift()) && !this.alive(s)) this.drop(s, 'a spare\'s process died before it was taken');
    if (!s && this.starting && !this.starting.claimed && !this.starting.gone) s = this.starting;
    if (!s) return null;
    try {
      moveDir(join(s.root, 'downloads'), downloads);
      try {
        moveDir(join(s.root, 'uploads'), uploads);
      } catch (e) {
        moveBack(join(s.root, 'downloads'), downloads);
        throw e;
      }
    } catch (e) {
      this.o.logger.warn('a spare\'s dirs could not be moved; cold start', { session_id: sessionId, error: (e as Error).message });
      if (s.parts) this.ready.unshift(s);
      return null;
    }
    s.claimed = true;
    return this.lease(s); // the registry refills once the session counts as live
  }

  /** Gives one spare up (the session limit is reached and a create needs its room). */
  giveUp(): boolean {
    const s = this.ready.pop() ?? (this.starting && !this.starting.claimed && !this.starting.gone ? this.starting : undefined);
    if (!s) return false;
    if (s.parts) this.drop(s, 'a spare was given up for a session at the limit');
    else s.gone = true; // starting: stopped at its next step (startParts)
    return true;
  }

  /** Starts a spare unless one is starting, the target is met or there is no room. */
  refill(): void {
    if (!this.running || this.closed || this.starting || this.retryTimer) return;
    if (this.ready.length >= this.target || this.o.room() - this.ready.length <= 0) return;
    const id = `spare-${randomUUID()}`;
    const root = join(this.root, id);
    // Made now, so a create can take this spare (and move its dirs) while it starts.
    mkdirSync(join(root, 'downloads'), { recursive: true, mode: 0o700 });
    mkdirSync(join(root, 'uploads'), { mode: 0o700 });
    const s: Spare = { id, root, started: null!, claimed: false, gone: false };
    s.started = this.startParts(s);
    this.starting = s;
    this.startingDone = s.started
      .then(
        (p) => {
          this.failures = 0;
          if (s.claimed) return;
          if (this.closed || s.gone) return this.dispose(s, p);
          s.parts = p;
          const died = () => {
            if (s.claimed || s.gone) return;
            this.drop(s, 'a spare\'s process exited; replacing it');
            this.refill();
          };
          p.display.exited.then(died, died);
          p.browser.exited.then(died, died);
          // Listed once settled: Chromium keeps a core busy for a moment after DevTools first
          // answers, and a spare taken then answers its session's first command slower. A
          // create meanwhile still takes it (it is still the one starting).
          return settled(p.browser).then(() => {
            if (!s.claimed && !s.gone && !this.closed) this.ready.push(s);
          });
        },
        (e: Error) => {
          if (!s.gone) this.failures++;
          if (!s.gone) this.o.logger.warn('a spare session could not start', { spare: id, error: e.message });
          if (!s.claimed) rmSync(root, { recursive: true, force: true });
        },
      )
      .finally(() => {
        this.starting = null;
        if (this.failures === 0 || this.closed) return this.refill();
        // A broken browser must not spin: 1 s after a failure, doubling to 60 s.
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.refill();
        }, Math.min(60_000, 1000 * 2 ** (this.failures - 1)));
        this.retryTimer.unref();
      });
  }

  private async startParts(s: Spare): Promise<Started> {
    const { parts, journal } = this.o;
    const log = this.o.logger.child({ spare: s.id });
    const rows: Started['rows'] = { display: [], browser: [] };
    let display: DisplayPart | undefined;
    let browser: BrowserPart | undefined;
    const check = () => {
      if (s.gone && !s.claimed) throw new Error('given up');
    };
    try {
      display = await parts.display({ width: SPARE_WIDTH, height: SPARE_HEIGHT, logger: log });
      for (const p of display.processes) rows.display.push(journal.recordOwned(p.kind, p.pid, p.dir, s.id, s.id));
      check();
      browser = await parts.browser({ display, width: SPARE_WIDTH, height: SPARE_HEIGHT, downloadDir: join(s.root, 'downloads'), uploadDir: join(s.root, 'uploads'), logger: log });
      for (const p of browser.processes) rows.browser.push(journal.recordOwned(p.kind, p.pid, p.dir, s.id, s.id));
      check();
      await display.whenFilled(5000);
      return { display, browser, rows };
    } catch (e) {
      await this.dispose(null, { display, browser, rows });
      throw e;
    }
  }

  private lease(s: Spare): SpareLease {
    const cold = this.o.parts;
    const given = { display: false, browser: false };
    let fellBack = false;
    const handOver = <K extends 'display' | 'browser'>(p: Started, k: K): Started[K] => {
      given[k] = true;
      for (const row of p.rows[k].splice(0)) this.o.journal.releaseOwned(row);
      return p[k];
    };
    return {
      parts: {
        ...cold,
        display: async (o) => {
          try {
            return handOver(await s.started, 'display');
          } catch {
            fellBack = true; // the spare failed to start (and closed what it had): as a cold session
            return cold.display(o);
          }
        },
        browser: async (o) => (fellBack ? cold.browser(o) : handOver(await s.started, 'browser')),
      },
      uploadDir: join(s.root, 'uploads'),
      release: () => {
        s.started.then(
          (p) => this.dispose(s, { display: given.display ? undefined : p.display, browser: given.browser ? undefined : p.browser, rows: p.rows }),
          () => rmSync(s.root, { recursive: true, force: true }),
        );
      },
    };
  }

  /** Live: not marked gone and every process still there (an exit not yet reported is caught here). */
  private alive(s: Spare): boolean {
    return !s.gone && !!s.parts && [...s.parts.display.processes, ...s.parts.browser.processes].every((p) => isAlive(p.pid));
  }

  private drop(s: Spare, why: string): void {
    s.gone = true;
    const i = this.ready.indexOf(s);
    if (i !== -1) this.ready.splice(i, 1);
    this.o.logger.info(why, { spare: s.id });
    void this.dispose(s, s.parts!);
  }

  /** Closes the parts given (browser first), releases their rows, removes the spare's dir. */
  private async dispose(s: Spare | null, p: { display?: DisplayPart; browser?: BrowserPart; rows: Started['rows'] }): Promise<void> {
    await p.browser?.close().catch(() => {});
    await p.display?.close().catch(() => {});
    for (const row of [...p.rows.display.splice(0), ...p.rows.browser.splice(0)]) this.o.journal.releaseOwned(row);
    if (s) rmSync(s.root, { recursive: true, force: true });
  }

  /** Stops refilling and closes every spare not taken (daemon stop). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    const waiting = this.ready.splice(0);
    for (const s of waiting) s.gone = true;
    const settling = this.starting && !this.starting.claimed && !this.starting.gone ? this.starting : null;
    if (settling) settling.gone = true;
    // Started but still settling: its parts are here to close; still starting: startParts stops.
    if (settling?.parts) waiting.push(settling);
    await Promise.all([...waiting.map((s) => this.dispose(s, s.parts!)), this.startingDone]);
  }
}

function emptyOrAbsent(dir: string): boolean {
  try {
    return readdirSync(dir).length === 0;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

/** Moves a spare's dir to the session's (over an empty one) and links the old path to it. */
function moveDir(from: string, to: string): void {
  mkdirSync(join(to, '..'), { recursive: true, mode: 0o700 });
  renameSync(from, to);
  try {
    symlinkSync(to, from);
  } catch (e) {
    renameSync(to, from);
    throw e;
  }
}

function moveBack(from: string, to: string): void {
  rmSync(from, { force: true });
  renameSync(to, from);
}

/** Until two Browser.getVersion round trips in a row take under 5 ms, at most 2 s. */
async function settled(browser: BrowserPart): Promise<void> {
  const until = Date.now() + 2000;
  for (let quick = 0; quick < 2 && Date.now() < until; ) {
    const t = performance.now();
    const ok = await browser.version().then(() => true, () => false);
    if (!ok) return; // gone: the exit watchers drop it
    quick = performance.now() - t < 5 ? quick + 1 : 0;
    if (quick < 2) await new Promise((r) => setTimeout(r, 50));
  }
}
