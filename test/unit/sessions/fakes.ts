import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session, type SessionDeps } from '../../../src/sessions/session.js';
import { AttachmentLease } from '../../../src/sessions/attachment.js';
import type { BrowserPart, DisplayPart, RecorderPart, SessionFactories } from '../../../src/sessions/parts.js';
import type { SessionParams } from '../../../src/sessions/params.js';
import type { AuditInput } from '../../../src/audit/log.js';
import { silentLogger } from '../../../src/util/logger.js';

/** A promise with its resolve/reject outside (a part's start or exit the test decides). */
export function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

/**
 * Fake parts that record what happens to them in one log (start and close order), with
 * hooks to make a start hang or fail and a process "exit".
 */
export class FakeParts implements SessionFactories {
  readonly log: string[] = [];
  readonly displayExit = deferred<unknown>();
  readonly browserExit = deferred<unknown>();
  /** Set to make that part's start wait for (or fail with) this promise. */
  browserGate: Promise<void> | null = null;
  failDisplay: Error | null = null;
  failBrowser: Error | null = null;
  failRecorder: Error | null = null;
  pages = [{ targetId: 'T1', type: 'page', title: 'blank', url: 'about:blank', attached: true }];
  /** The browser part made last. */
  made?: EventEmitter & BrowserPart;
  inputReleased = 0;

  async display(): Promise<DisplayPart> {
    this.log.push('display:start');
    if (this.failDisplay) throw this.failDisplay;
    return {
      address: { name: ':99', authFile: '/nonexistent' },
      framebuffer: { width: 8, height: 8 } as unknown as DisplayPart['framebuffer'],
      input: { releaseAll: () => void this.inputReleased++ } as unknown as DisplayPart['input'],
      processes: [{ kind: 'xvfb', pid: 101, dir: '/tmp/x' }],
      exited: this.displayExit.promise,
      whenFilled: async () => true,
      close: async () => void this.log.push('display:close'),
    };
  }

  browser = async (): Promise<BrowserPart> => {
    this.log.push('browser:start');
    if (this.browserGate) await this.browserGate;
    if (this.failBrowser) throw this.failBrowser;
    let closing: Promise<void> | undefined;
    const b = Object.assign(new EventEmitter(), {
      processes: [{ kind: 'chromium' as const, pid: 102, dir: '/tmp/p' }],
      exited: this.browserExit.promise,
      stderrTail: () => '',
      openAgent: async () => {
        throw new Error('no agents in fakes');
      },
      pages: () => this.pages,
      hasTarget: (id: string) => this.pages.some((p) => p.targetId === id),
      version: async () => ({ product: 'Fake/1', userAgent: 'fake', protocolVersion: '1.3', jsVersion: '1', revision: '@1' }),
      openTab: async () => 'T2',
      // Idempotent like the real part: the session starts it early and the stack awaits it again.
      close: () => (closing ??= (async () => void this.log.push('browser:close'))()),
    });
    this.made = b as unknown as EventEmitter & BrowserPart;
    return this.made;
  };

  async recorder(): Promise<RecorderPart> {
    this.log.push('recorder:start');
    if (this.failRecorder) throw this.failRecorder;
    return { processes: [{ kind: 'ffmpeg', pid: 103, dir: null }], close: async () => void this.log.push('recorder:close') };
  }

  screencast() {
    this.log.push('screencast:start');
    return { addViewer: () => {}, close: async (code: number) => void this.log.push(`screencast:close:${code}`) };
  }

  webrtc() {
    this.log.push('webrtc:start');
    return { addViewer: () => {}, close: async (code: number) => void this.log.push(`webrtc:close:${code}`) };
  }
}

export interface Harness {
  session: Session;
  lease: AttachmentLease;
  parts: FakeParts;
  audit: AuditInput[];
  journal: { owned: Map<number, string>; released: number[] };
  notified: Record<string, unknown>[];
  cleanup(): void;
}

const PARAMS: SessionParams = {
  width: 8,
  height: 8,
  timeoutS: 900,
  enableVnc: false,
  vncPassword: null,
  enableRtc: false,
  rtcUsername: null,
  rtcPassword: null,
  debug: false,
  hitlAllowedNetworks: null,
  debugPort: false,
} as unknown as SessionParams;

export function makeSession(opts: { parts?: FakeParts; params?: Partial<SessionParams>; graceMs?: number } = {}): Harness {
  const stateDir = mkdtempSync(join(tmpdir(), 'handoff-session-unit-'));
  const parts = opts.parts ?? new FakeParts();
  const audit: AuditInput[] = [];
  const notified: Record<string, unknown>[] = [];
  const journal = { owned: new Map<number, string>(), released: [] as number[] };
  let row = 0;
  const deps = {
    config: { stateDir, host: '127.0.0.1', vncPort: 0, handoffGraceMs: opts.graceMs ?? 15_000 },
    audit: { append: (e: AuditInput) => void audit.push(e), writable: true, degraded: null },
    journal: {
      recordOwned: (kind: string, pid: number) => (journal.owned.set(++row, `${kind}:${pid}`), row),
      releaseOwned: (r: number) => void journal.released.push(r),
      saveSession: () => {},
    },
    logger: silentLogger,
    parts,
    notify: (e: Record<string, unknown>) => void notified.push(e),
  } as unknown as SessionDeps;
  const lease = new AttachmentLease();
  const session = new Session('s1', { ...PARAMS, ...opts.params } as SessionParams, false, deps, lease);
  return { session, lease, parts, audit, journal, notified, cleanup: () => rmSync(stateDir, { recursive: true, force: true }) };
}
