import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { WebSocket } from 'ws';
import type { Config } from '../config/config.js';
import type { AuditLog, AuditInput } from '../audit/log.js';
import type { Logger } from '../util/logger.js';
import { HandoffError } from '../util/errors.js';
import { ipAllowed } from '../util/cidr.js';
import { hostForUrl } from '../util/net.js';
import type { FrameSource, InputSink } from '../display/types.js';
import type { AgentChannel } from '../cdp/pipe-mux.js';
import type { TargetInfo } from '../browser/control.js';
import { SESSION_ENDED_CLOSE_CODE, type Transport, type ViewerHandle, type ViewerSession, type ViewerState } from '../liveview/types.js';
import type { LinkKind } from '../liveview/tokens.js';
import type { AttachEvent, Attachment, AttachmentLease } from './attachment.js';
import { sessionDir, type SessionParams } from './params.js';
import type { SessionJournal } from './journal.js';
import { Viewer } from './viewer.js';
import { HandoffMachine, type HandoffCompleted, type HandoffInfo, type HandoffOutcome, type HandoffPhase, type HandoffRequest } from './handoff.js';
import { PageUi } from './page-ui.js';
import type { ProfileClaim, ProfileStore } from '../profiles/store.js';
import type { SpareLease } from './warm-pool.js';
import { PartStack, type BrowserPart, type DisplayPart, type OwnedProcess, type ScreencastPart, type SessionFactories, type WebRtcPart } from './parts.js';

export type { HandoffCompleted } from './handoff.js';
export { SESSION_ENDED_CLOSE_CODE } from '../liveview/types.js';

export type SessionState = 'starting' | 'ready' | 'stopped' | 'crashed';

/** Which state may follow which (API.md 4): anything else is a bug and throws. */
const NEXT_STATE: Record<SessionState, readonly SessionState[]> = {
  starting: ['ready', 'stopped', 'crashed'],
  ready: ['stopped', 'crashed'],
  stopped: [],
  crashed: [],
};

export interface SessionDeps {
  config: Readonly<Config>;
  audit: AuditLog;
  journal: SessionJournal;
  logger: Logger;
  /** Makes the display, browser, recorder and live views (real-parts.ts; fakes in unit tests). */
  parts: SessionFactories;
  /** Persistent profiles (API.md 3.1 `profile`); absent: `profile=` is refused. */
  profiles?: ProfileStore;
  /** Handoff notifications for --webhook (API.md 7). */
  notify?: (event: Record<string, unknown>) => void;
}

/** Anything attached to a session that must close when it ends (CDP sockets, viewers). */
export interface Closable {
  close(code: number, reason: string): void;
}

/** API.md 4 `Session`. */
export interface SessionInfo {
  session_id: string;
  run_id: string;
  state: SessionState;
  attachment: Attachment;
  attached_by: '' | 'agent' | 'human';
  auto_close: boolean;
  width: number;
  height: number;
  created_at: string;
  last_activity_at: string;
  expires_at: string | null;
  transports: { screencast: boolean; webrtc: boolean; vnc: boolean };
  viewers: { screencast: number; webrtc: number; vnc: number };
  vnc_url: string | null;
  debug: boolean;
  handoff: HandoffInfo | null;
  profile: string | null;
  debug_port: number | null;
}

/**
 * One browser session: it coordinates its parts (a display, a browser filling it, the live
 * views, the recorder; made by the injected factories and owned on a disposable stack), the
 * attachment lease (the registry hands agents their slot), the handoff state machine and the
 * idle timer. Everything it starts closes in reverse order when it ends.
 */
export class Session extends EventEmitter<{ change: []; ended: [reason: string]; handoffCompleted: [HandoffCompleted]; attachment: [AttachEvent] }> implements ViewerSession {
  readonly runId: string;
  readonly createdAt = new Date();
  readonly ready: Promise<void>;
  autoClose: boolean;

  private currentState: SessionState = 'starting';
  private lastActivity = Date.now();
  private endedBecause: string | null = null;
  private ownPort: number | null = null;
  private readonly parts: PartStack;
  private display?: DisplayPart;
  private browser?: BrowserPart;
  private pageUi?: PageUi;
  private screencastHub?: ScreencastPart;
  private webrtcHub?: WebRtcPart;
  private readonly handoffs: HandoffMachine;
  private readonly attached = new Set<Closable>();
  private readonly viewerCounts: Record<Transport, number> = { screencast: 0, webrtc: 0, vnc: 0 };
  private readonly owned: number[] = [];
  private downloadCount = 0;
  private browserCloseAsked = false;
  private idleTimer?: NodeJS.Timeout;
  private idleDeadline: number | null = null;
  /** infoJson()'s last answer and what it was made from. */
  private infoCache: { key: unknown[]; json: string } | null = null;
  private ending?: Promise<void>;
  private readonly log: Logger;

  /** Made by the registry only: it keeps the lease, so agents attach through it. */
  constructor(
    readonly id: string,
    readonly params: SessionParams,
    autoClose: boolean,
    private readonly deps: SessionDeps,
    private readonly lease: AttachmentLease,
    /** The persistent profile claimed for this run (registry), with the run id it was claimed for. */
    private readonly profile: { claim: ProfileClaim; runId: string } | null = null,
    /** A warm pool's spare this session runs on (registry; warm-pool.ts). */
    private readonly spare: SpareLease | null = null,
  ) {
    super();
    this.runId = profile?.runId ?? randomUUID();
    this.autoClose = autoClose;
    this.log = deps.logger.child({ session_id: id, run_id: this.runId });
    this.parts = new PartStack((what, e) => this.log.warn(`closing ${what} failed`, { error: e.message }));
    this.handoffs = new HandoffMachine(
      {
        requested: (h, m) => {
          this.audit({ type: 'handoff_requested', transport: m.by, detail: { handoff_id: h.id, reason: h.reason, ...(m.renewed ? { renewed: true } : {}) } });
          if (!m.linkStarted) this.deps.notify?.({ type: 'handoff_requested', session_id: this.id, handoff_id: h.id, reason: h.reason, live_url: m.liveUrl });
        },
        completed: (e, held) => {
          this.audit({ type: 'handoff_completed', transport: e.by, detail: { handoff_id: e.handoffId, outcome: e.outcome, duration_ms: e.durationMs, held_commands: held } });
          this.deps.notify?.({ type: 'handoff_completed', session_id: this.id, handoff_id: e.handoffId, outcome: e.outcome, by: e.by, duration_ms: e.durationMs });
          this.emit('handoffCompleted', e);
          // Control goes back to the agent: viewers in control become view-only.
          this.lease.setHandoff(false);
        },
        changed: () => this.changed(),
      },
      deps.config.handoffGraceMs,
    );
    this.lease.onChange(() => {
      this.lastActivity = Date.now();
      if (this.lease.humanControllers > 0) this.handoffs.humanControls(true, 'viewer');
      this.scheduleIdle();
      this.changed();
    });
    // The one writer of attach and detach rows, whoever attaches over whatever transport.
    this.lease.onAttachEvent((e) => {
      this.audit({
        type: e.kind === 'attach' ? 'cloud_browser_agent_attach' : 'cloud_browser_agent_detach',
        transport: e.who.transport,
        source_ip: e.who.sourceIp,
        actor: e.who.actor,
        detail: e.detail,
      });
      this.emit('attachment', e);
    });
    this.ready = this.start();
    // A failed start is reported to whoever awaits `ready`; this keeps it from being unhandled.
    this.ready.catch(() => {});
  }

  // ---- what everyone may read -------------------------------------------------------------

  get state(): SessionState {
    return this.currentState;
  }
  get live(): boolean {
    return this.currentState === 'starting' || this.currentState === 'ready';
  }
  get sessionId(): string {
    return this.id;
  }
  get lastActivityAt(): number {
    return this.lastActivity;
  }
  get endReason(): string | null {
    return this.endedBecause;
  }
  get attachment(): Attachment {
    return this.live ? this.lease.attachment : 'none';
  }
  /** An agent holds the session and no handoff gives control to humans (viewers watch). */
  get agentHoldsControl(): boolean {
    return this.lease.agentConnected && !this.lease.handoffActive;
  }
  /** API.md 4 `Session.handoff`. */
  get handoff(): HandoffInfo | null {
    return this.handoffs.info;
  }
  get handoffState(): HandoffPhase {
    return this.handoffs.state;
  }
  /** API.md 3.1 `debug_port`: this session's own loopback port while it is open (http/debug-port.ts). */
  get debugPort(): number | null {
    return this.live ? this.ownPort : null;
  }
  setDebugPort(port: number | null): void {
    this.ownPort = port;
    this.changed();
  }
  get downloadDir(): string {
    return sessionDir(join(this.deps.config.stateDir, 'downloads'), this.id);
  }
  /** Files the agent uploads for file inputs (API.md 4); made at start so the browser's sandbox can bind it. */
  get uploadDir(): string {
    // On a spare: the path its browser's sandbox bound (a link to the dir below).
    if (this.spare && this.live) return this.spare.uploadDir;
    return sessionDir(join(this.deps.config.stateDir, 'uploads'), this.id);
  }
  /** debug=true: this run's screen goes to a video file (GET /session/ID/recording). */
  get recordingPath(): string {
    return join(sessionDir(join(this.deps.config.stateDir, 'recordings'), this.id), `${this.runId}.mp4`);
  }

  // ---- start, crash, stop ------------------------------------------------------------------

  private async start(): Promise<void> {
    const make = this.spare?.parts ?? this.deps.parts;
    const { width, height } = this.params;
    this.deps.audit.append({ ...this.auditBase(), type: 'session_created', detail: { width, height, auto_close: this.autoClose, spare: this.spare !== null } });
    this.persist();
    try {
      await mkdir(this.downloadDir, { recursive: true, mode: 0o700 });
      await mkdir(this.uploadDir, { recursive: true, mode: 0o700 });
      // The profile opens (unseals) while the display starts.
      const opening = this.profile?.claim.open();
      opening?.catch(() => {});
      const display = this.own('display', await make.display({ width, height, logger: this.log }));
      this.display = display;
      display.exited.then(() => this.onProcessExit('display server exited'));
      const opened = opening ? await opening : null;
      this.checkStillStarting();
      // The browser and the recorder need only the display: side by side. allSettled, so a
      // part that starts while the other fails is still owned (and closed).
      const [recorder, browser] = await Promise.allSettled([
        this.params.debug ? make.recorder({ display, width, height, path: this.recordingPath, logger: this.log }) : Promise.resolve(null),
        make.browser({ display, width, height, downloadDir: this.downloadDir, uploadDir: this.uploadDir, userDataDir: opened?.dir, logger: this.log }),
      ]);
      // Pushed recorder first: the browser closes before it (as it is started after).
      if (recorder.status === 'fulfilled' && recorder.value) this.own('recorder', recorder.value);
      if (browser.status === 'fulfilled') {
        this.browser = this.own('browser', browser.value);
        browser.value.exited.then(() => this.onProcessExit('browser crashed'));
      }
      const failed = [recorder, browser].find((p): p is PromiseRejectedResult => p.status === 'rejected');
      if (failed) throw failed.reason;
      this.checkStillStarting();
      await display.whenFilled(5000);
      const b = this.browser!;
      b.on('navigated', (url) => this.handoffs.noteUrl(url));
      b.on('download', (d) => {
        this.downloadCount++;
        this.handoffs.noteDownload(d.name);
        this.audit({ type: 'download_completed', detail: { ...d } });
        this.changed();
      });
      if (b.control) {
        const pages = new PageUi(b.control, this.uploadDir, this.deps.config.minFreeMb, (e) => this.audit(e), () => this.changed());
        this.pageUi = pages;
        this.parts.push('page ui', { close: async () => pages.close() });
      }
      // The same session id resumed on its profile: the pages it left (API.md 3.1 `profile`).
      if (opened?.lastSessionId === this.id && opened.lastTabs.length) await this.reopenTabs(b, opened.lastTabs);
      this.checkStillStarting();
      this.go('ready');
      this.scheduleIdle();
      this.persist();
      this.changed();
      this.log.info('session ready');
    } catch (e) {
      const detail = e instanceof HandoffError ? (e.detail ?? e.message) : (e as Error).message;
      if (this.live) {
        this.log.error('session failed to start', { error: detail });
        void this.end('crashed', 'browser failed to start');
      }
      // Parts that arrived after the end closed at once: wait for them too.
      await this.parts.settle();
      throw e instanceof HandoffError ? e : new HandoffError('browser_failed', 'the browser could not start', {}, detail);
    }
  }

  /** Opens `urls` as tabs; the blank first page makes way for them. */
  private async reopenTabs(b: BrowserPart, urls: string[]): Promise<void> {
    const blank = b.pages().filter((p) => p.url === 'about:blank');
    let opened = 0;
    for (const url of urls) {
      try {
        await b.openTab(url);
        opened++;
      } catch (e) {
        this.log.warn('a tab of the last run could not be reopened', { error: (e as Error).message });
      }
    }
    if (opened && blank.length === 1) await b.control?.closePage(blank[0]!.targetId).catch(() => {});
  }

  /** The pages to reopen when this session id resumes on its profile: web pages only. */
  private tabsToKeep(): string[] {
    return (this.browser?.pages() ?? []).map((p) => p.url).filter((u) => /^https?:\/\//.test(u));
  }

  private checkStillStarting(): void {
    if (!this.live) throw new Error('stopped while starting');
  }

  /** Puts a part on the stack and journals its processes, so a restarted daemon can reap them. */
  private own<P extends { processes?: readonly OwnedProcess[]; close(): Promise<void> }>(what: string, part: P): P {
    for (const p of part.processes ?? []) this.owned.push(this.deps.journal.recordOwned(p.kind, p.pid, p.dir, this.id, this.runId));
    return this.parts.push(what, part);
  }

  /**
   * Chromium or Xvfb exited on its own: a crash, unless we were already stopping it, the
   * agent asked it to quit (Browser.close) or its last page was closed (issue 15.2).
   * Chromium's exit is judged once its pipe is drained, so those are known by then.
   */
  private onProcessExit(reason: string): void {
    if (!this.live || this.ending) return;
    if (reason === 'browser crashed') {
      if (this.browserCloseAsked) return void this.end('stopped', 'browser closed');
      if (this.browser?.pages().length === 0) return void this.end('stopped', 'last page closed');
    }
    this.log.warn('session process exited', { reason, stderr: this.browser?.stderrTail().slice(-500) });
    void this.end('crashed', reason);
  }

  /** The agent is sending Browser.close (noted before Chromium sees it): its exit is a stop. */
  browserCloseRequested(): void {
    this.browserCloseAsked = true;
  }

  stop(reason = 'session stopped'): Promise<void> {
    return this.end('stopped', reason);
  }

  /** Ends the session once: closes what is attached with 4000, then the parts in reverse. */
  private end(state: 'stopped' | 'crashed', reason: string): Promise<void> {
    this.ending ??= (async () => {
      this.go(state);
      this.endedBecause = reason;
      clearTimeout(this.idleTimer);
      this.idleDeadline = null;
      // A handoff still open ends with its session, before the session's row (its timers and
      // webhook must not fire after session_stopped).
      this.handoffs.close();
      // Recorded before anyone is told, so a client that sees 4000 finds the row.
      this.audit({ type: state === 'crashed' ? 'session_crashed' : 'session_stopped', detail: { reason } });
      this.persist();
      for (const a of [...this.attached]) a.close(SESSION_ENDED_CLOSE_CODE, reason);
      this.attached.clear();
      this.emit('ended', reason);
      const tabs = this.profile ? this.tabsToKeep() : null;
      // The browser's exit is the slowest part of an end: started now, before the parts above
      // it on the stack close (the stack awaits the same close). At a daemon stop every session
      // gets here in the same turn, so every SIGKILL goes out at once.
      this.browser?.close().catch(() => {});
      await this.parts.close();
      // Stopped while starting: the parts still on their way are closed as they arrive.
      await this.ready.catch(() => {});
      // A stopped session stays listed for stoppedRetentionS: it keeps none of its parts (the
      // framebuffer alone holds two frames), or memory grows with every session (soak, issue 10).
      this.display = this.browser = this.screencastHub = this.webrtcHub = this.pageUi = undefined;
      this.spare?.release(); // what of the spare this session never took
      // Only once the browser has exited: its user-data dir is complete, then sealed.
      if (this.profile) await this.profile.claim.release(tabs).catch((e: Error) => this.log.error('releasing the profile failed', { profile: this.profile?.claim.name, error: e.message }));
      for (const row of this.owned.splice(0)) this.deps.journal.releaseOwned(row);
      this.changed();
      this.log.info('session ended', { state, reason });
    })();
    return this.ending;
  }

  private go(next: SessionState): void {
    if (!NEXT_STATE[this.currentState].includes(next)) throw new Error(`session: ${this.currentState} -> ${next} is not a transition`);
    this.currentState = next;
  }

  // ---- agents (sessions/agent.ts; the registry hands out the lease's slot) -------------------

  /** A DevTools session on the browser's pipe for an agent (a page's with `targetId`). */
  async openAgentChannel(targetId?: string): Promise<AgentChannel> {
    await this.ready;
    if (!this.live || !this.browser) throw new HandoffError('session_not_found', 'the session stopped');
    return this.browser.openAgent(targetId);
  }

  /** Registers a socket or viewer that must close with the session; returns its removal. */
  attach(c: Closable): () => void {
    if (!this.live) {
      c.close(SESSION_ENDED_CLOSE_CODE, this.endedBecause ?? 'session stopped');
      return () => {};
    }
    this.attached.add(c);
    return () => this.attached.delete(c);
  }

  touch(): void {
    this.lastActivity = Date.now();
  }

  audit(e: Omit<AuditInput, 'session_id' | 'run_id'>): void {
    this.deps.audit.append({ ...this.auditBase(), ...e });
  }

  private auditBase() {
    return { session_id: this.id, run_id: this.runId };
  }

  // ---- the browser, for discovery routes ----------------------------------------------------

  /** Whether `targetId` is one of this session's targets (page-level sockets). */
  findTarget(targetId: string): boolean {
    return this.live && (this.browser?.hasTarget(targetId) ?? false);
  }

  /** The page targets, for /json/list. */
  targets(): TargetInfo[] {
    return this.live ? (this.browser?.pages() ?? []) : [];
  }

  /** Browser.getVersion of this session's browser (null when it is not running). */
  async browserVersion(): Promise<Awaited<ReturnType<BrowserPart['version']>> | null> {
    await this.ready.catch(() => {});
    if (!this.live || !this.browser) return null;
    return this.browser.version();
  }

  /**
   * Opens a tab (Chrome's /json/new on a debug port); its target id. Not while a human holds
   * the session or a handoff waits for one: the port's key holder is automation, and
   * automation waits for the hand-back.
   */
  async openTab(url: string): Promise<string> {
    await this.ready;
    if (!this.live || !this.browser) throw new HandoffError('session_not_found', 'the session has ended');
    // A handoff not yet joined (or in its reconnect grace) is the human's turn too.
    if (this.lease.attachment === 'human' || this.lease.handoffActive) {
      throw new HandoffError('session_attached', `session ${this.id} is handed to a human; open tabs after the hand-back`, { attachment: 'human' });
    }
    return this.browser.openTab(url);
  }

  // ---- live views ---------------------------------------------------------------------------

  /** The session's own pixels and real X input (ViewerSession); there once the display is up. */
  get framebuffer(): FrameSource {
    return this.display!.framebuffer;
  }
  get input(): InputSink {
    return this.display!.input;
  }

  /** A screencast viewer socket (already accepted): the hub starts with its first viewer. */
  openScreencast(ws: WebSocket, viewer: { sourceIp: string; link: LinkKind }): void {
    if (!this.live || !this.display) return this.refuseSocket(ws);
    this.screencastHub ??= this.ownHub('screencast', this.deps.parts.screencast(this, this.log.child({ component: 'screencast' })));
    this.screencastHub.addViewer(ws, () => this.join({ transport: 'screencast', sourceIp: viewer.sourceIp, link: viewer.link }), viewer.link);
  }

  /** Throws unless WebRTC can serve this session now (404 without enable_rtc). */
  requireWebRtc(): void {
    if (!this.live || !this.display) throw new HandoffError('session_not_found', 'the session has ended');
    if (!this.params.enableRtc) throw new HandoffError('not_found', 'this session was not started with enable_rtc=true');
  }

  /** A WebRTC signalling socket (already accepted); credentials are checked by the hub. */
  openWebRtc(ws: WebSocket, viewer: { sourceIp: string; link: LinkKind }): void {
    if (!this.live || !this.display || !this.params.enableRtc) return this.refuseSocket(ws);
    this.webrtcHub ??= this.ownHub('webrtc', this.makeWebRtc(this.display));
    this.webrtcHub.addViewer(ws, viewer.sourceIp, () => this.join({ transport: 'webrtc', sourceIp: viewer.sourceIp, link: viewer.link }), viewer.link);
  }

  private makeWebRtc(display: DisplayPart): WebRtcPart {
    const encoders = new Map<string, number>();
    return this.deps.parts.webrtc(this, {
      display,
      width: this.params.width,
      height: this.params.height,
      credentials: { username: this.params.rtcUsername, password: this.params.rtcPassword ?? '' },
      onAuthFailed: (ip, detail) => this.audit({ type: 'auth_failed', transport: 'webrtc', source_ip: ip, actor: 'human', detail }),
      // Encoders come and go with their viewers; each run of one is journaled while it lives.
      onEncoderProcess: (codec, pid) => {
        const row = encoders.get(codec);
        if (row !== undefined) this.disown(row);
        encoders.delete(codec);
        if (pid) {
          const r = this.deps.journal.recordOwned('ffmpeg', pid, null, this.id, this.runId);
          this.owned.push(r);
          encoders.set(codec, r);
        }
      },
      logger: this.log.child({ component: 'webrtc' }),
    });
  }

  private disown(row: number): void {
    const i = this.owned.indexOf(row);
    if (i === -1) return; // already released by the end
    this.owned.splice(i, 1);
    this.deps.journal.releaseOwned(row);
  }

  /** A hub closes first when the session ends (pushed last), its sockets with 4000. */
  private ownHub<H extends ScreencastPart | WebRtcPart>(what: string, hub: H): H {
    this.parts.push(what, { close: () => hub.close(SESSION_ENDED_CLOSE_CODE, this.endedBecause ?? 'session stopped') });
    return hub;
  }

  private refuseSocket(ws: WebSocket): void {
    ws.close(SESSION_ENDED_CLOSE_CODE, this.endedBecause ?? 'session stopped');
  }

  /** API.md 3.4 for human viewers; see ViewerSession. */
  join(opts: { transport: Transport; sourceIp: string; link?: LinkKind }): ViewerHandle {
    this.checkNetwork(opts.sourceIp, opts.transport);
    // No attach without its audit row (README "Fault policy").
    const { audit } = this.deps;
    if (!audit.writable) throw new HandoffError('audit_unavailable', 'the audit trail cannot be written; no new attach until it can', {}, audit.degraded ?? undefined);
    // A control link opened while the agent holds the session starts a handoff (API.md 3.4).
    if (opts.link === 'control' && this.lease.agentConnected && !this.handoffs.info) {
      this.requestHandoff({ reason: 'live link opened', holdAgentInput: true }, opts.transport, { linkStarted: true });
    }
    const viewer = new Viewer(
      {
        seat: (onControl) => this.lease.joinHuman({ actor: 'human', transport: opts.transport, sourceIp: opts.sourceIp }, onControl),
        releaseInput: () => this.display?.input.releaseAll(),
        attach: (c) => this.attach(c),
        completeHandoff: (outcome, by) => this.completeHandoff(outcome, by),
        viewerJoined: (t) => this.viewerCounts[t]++,
        viewerLeft: (t) => {
          this.viewerCounts[t]--;
          if (this.lease.humanControllers === 0) this.handoffs.humanControls(false, t);
          this.changed();
        },
      },
      opts.transport,
      opts.sourceIp,
      opts.link,
    );
    this.changed();
    return viewer;
  }

  /** hitl_allowed_networks (API.md 2): human transports and downloads only from there. */
  checkNetwork(sourceIp: string, transport: string): void {
    const nets = this.params.hitlAllowedNetworks;
    if (nets && !ipAllowed(sourceIp, nets)) {
      this.audit({ type: 'network_denied', transport, source_ip: sourceIp, actor: 'human' });
      throw new HandoffError('network_not_allowed', 'your network may not open this session');
    }
  }

  /** The viewers' tab strip and file requests (page-ui.ts), while the browser runs. */
  get pages(): PageUi | undefined {
    return this.pageUi;
  }

  viewerState(): ViewerState {
    return {
      attachment: this.attachment,
      handoff: this.handoffs.info,
      viewers: { ...this.viewerCounts },
      downloads: this.downloadCount,
      tabs: this.pageUi?.tabs,
      fileRequest: this.pageUi?.fileRequest ?? null,
    };
  }

  onViewerStateChange(listener: () => void): () => void {
    this.on('change', listener);
    return () => this.off('change', listener);
  }

  // ---- handoff (REST, CDP, MCP and the viewers all come here) -------------------------------

  /**
   * Gives control to humans while the agent stays connected (API.md 7). `liveUrl` is the
   * link sent to the human (webhook). A request while one is pending keeps its id and shows
   * the new reason (handoff.ts).
   */
  requestHandoff(req: Omit<HandoffRequest, 'singleUse'>, by: string, opts: { liveUrl?: string; linkStarted?: boolean } = {}): HandoffInfo {
    if (!this.live) throw new HandoffError('session_not_found', 'the session has ended');
    const h = this.handoffs.request(req, by, { ...opts, humanInControl: this.lease.humanControllers > 0 });
    this.lease.setHandoff(true);
    return h;
  }

  /** Ends the pending or active handoff; false when there is none. */
  completeHandoff(outcome: HandoffOutcome, by: string): boolean {
    return this.handoffs.complete(outcome, by);
  }

  /** Whether the agent's input and navigation wait now (input-hold.ts). */
  get holdsAgentInput(): boolean {
    return this.handoffs.holdsAgentInput;
  }

  countHeldCommand(): void {
    this.handoffs.countHeldCommand();
  }

  // ---- idle timer and the API projection ----------------------------------------------------

  /** Idle timer: runs only while nobody is attached (API.md 3.1 `timeout`). */
  private scheduleIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleDeadline = null;
    if (this.currentState !== 'ready' || this.lease.attachment !== 'none') return;
    const ms = this.params.timeoutS * 1000;
    this.idleDeadline = Date.now() + ms;
    this.idleTimer = setTimeout(() => void this.stop('idle timeout'), ms);
    this.idleTimer.unref();
  }

  changed(): void {
    this.emit('change');
  }

  private persist(): void {
    this.deps.journal.saveSession(this.id, this.runId, this.currentState, this.info(this.deps.config.host));
  }

  /**
   * info() as JSON, serialized again only when something it shows has changed: GET /sessions
   * and /session/ID under many pollers (bench "Load") send the same bytes over and over. The
   * key is every input of info() that can change (the rest is fixed at creation), read afresh
   * on each call, so an answer is never staler than info() itself.
   */
  infoJson(publicHost: string): string {
    const v = this.viewerCounts;
    const key = [publicHost, this.currentState, this.lease.attachment, this.autoClose, this.lastActivity, this.idleDeadline, v.screencast, v.webrtc, v.vnc, this.handoffs.info, this.ownPort];
    const cached = this.infoCache;
    if (cached && cached.key.every((k, i) => k === key[i])) return cached.json;
    const json = JSON.stringify(this.info(publicHost));
    this.infoCache = { key, json };
    return json;
  }

  /** Everything it reads that can change must be in infoJson's key. */
  info(publicHost: string): SessionInfo {
    const attachment = this.attachment;
    const { vncPort } = this.deps.config;
    const vnc = this.params.enableVnc && vncPort !== 0;
    return {
      session_id: this.id,
      run_id: this.runId,
      state: this.currentState,
      attachment,
      attached_by: attachment === 'none' ? '' : attachment,
      auto_close: this.autoClose,
      width: this.params.width,
      height: this.params.height,
      created_at: this.createdAt.toISOString(),
      last_activity_at: new Date(this.lastActivity).toISOString(),
      expires_at: this.idleDeadline ? new Date(this.idleDeadline).toISOString() : null,
      transports: { screencast: true, webrtc: this.params.enableRtc, vnc },
      viewers: { ...this.viewerCounts },
      vnc_url: vnc ? `vnc://${this.runId}@${hostForUrl(publicHost)}:${vncPort}` : null,
      debug: this.params.debug,
      handoff: this.handoffs.info,
      profile: this.params.profile,
      debug_port: this.debugPort,
    };
  }
}
