import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config/config.js';
import type { AuditLog, AuditInput } from '../audit/log.js';
import type { Logger } from '../util/logger.js';
import { HandoffError } from '../util/errors.js';
import { ipAllowed } from '../util/cidr.js';
import { XvfbDisplay } from '../display/xvfb.js';
import { WindowFitter } from '../display/window.js';
import { DisplayRecorder } from '../display/recorder.js';
import { Framebuffer } from '../display/framebuffer.js';
import { XInput } from '../display/input.js';
import { ChromiumBrowser } from '../browser/chromium.js';
import { BrowserControl } from '../browser/control.js';
import { connectPipe, type CdpPipeMux } from '../cdp/pipe-mux.js';
import type { FrameSource, InputSink } from '../display/types.js';
import type { Transport, ViewerHandle, ViewerSession, ViewerState } from '../liveview/types.js';
import type { LinkKind } from '../liveview/tokens.js';
import { AttachmentLease, type Attachment } from './attachment.js';
import { sessionDir, type SessionParams } from './params.js';
import type { SessionJournal } from './journal.js';
import { Viewer } from './viewer.js';
import { Screencast } from '../liveview/screencast/screencast.js';
import { WebRtcHub } from '../liveview/webrtc/hub.js';
import { chromiumPolicyPath } from '../browser/policy.js';
import { PageUi } from './page-ui.js';

export type SessionState = 'starting' | 'ready' | 'stopped' | 'crashed';

export interface SessionDeps {
  config: Readonly<Config>;
  audit: AuditLog;
  journal: SessionJournal;
  logger: Logger;
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
  handoff: null | { id: string; reason: string; requested_at: string };
  debug_port: number | null;
}

/** API.md 3.5: sockets of a session that ends close with this code and the reason. */
export const SESSION_ENDED_CLOSE_CODE = 4000;

/** Handoff.completed (API.md 7). */
export interface HandoffCompleted {
  handoffId: string;
  outcome: 'done' | 'failed' | 'timeout' | 'cancelled';
  by: string;
  durationMs: number;
  changes: { urls: string[]; downloads: string[] };
}

/**
 * One browser session: an Xvfb display, a headful Chromium filling it, the live views of its
 * framebuffer, the attachment lease, handoffs and the idle timer. It owns everything it
 * starts and closes it in reverse order.
 */

export class Session extends EventEmitter<{ change: []; ended: [reason: string]; handoffCompleted: [HandoffCompleted] }> implements ViewerSession {
  readonly runId = randomUUID();
  readonly createdAt = new Date();
  readonly lease = new AttachmentLease();
  readonly ready: Promise<void>;
  state: SessionState = 'starting';
  autoClose: boolean;
  lastActivityAt = Date.now();
  endReason: string | null = null;
  handoff: SessionInfo['handoff'] = null;
  /** API.md 3.1 `debug_port`: this session's own loopback port while it is open (http/debug-port.ts). */
  debugPort: number | null = null;

  // The parts, in start order; teardown() closes them in reverse.
  xvfb?: XvfbDisplay;
  private windowFitter?: WindowFitter;
  private fb?: Framebuffer;
  private xinput?: XInput;
  chromium?: ChromiumBrowser<CdpPipeMux>;
  control?: BrowserControl;
  /** Viewers' tab strip and file requests (page-ui.ts). */
  pages?: PageUi;
  private recorder?: DisplayRecorder;
  private screencastHub?: Screencast;
  private webrtcHub?: WebRtcHub;

  private readonly attached = new Set<Closable>();
  private readonly viewerCounts: Record<Transport, number> = { screencast: 0, webrtc: 0, vnc: 0 };
  private readonly owned: number[] = [];
  private downloadCount = 0;
  private linkStartedHandoff = false;
  /** Handoff.request {holdAgentInput} of the current handoff, and how much was held (input-hold.ts). */
  private handoffHoldsInput = true;
  private handoffHeldCommands = 0;
  private handoffTimer?: NodeJS.Timeout;
  /** What happened while the current handoff was active, for Handoff.completed `changes`. */
  private handoffChanges: HandoffCompleted['changes'] = { urls: [], downloads: [] };
  private idleTimer?: NodeJS.Timeout;
  private idleDeadline: number | null = null;
  private ending?: Promise<void>;
  private readonly log: Logger;

  constructor(
    readonly id: string,
    readonly params: SessionParams,
    autoClose: boolean,
    private readonly deps: SessionDeps,
  ) {
    super();
    this.autoClose = autoClose;
    this.log = deps.logger.child({ session_id: id, run_id: this.runId });
    this.lease.onChange(() => {
      this.lastActivityAt = Date.now();
      this.scheduleIdle();
      this.changed();
    });
    this.ready = this.start();
    // A failed start is reported to whoever awaits `ready`; this keeps it from being unhandled.
    this.ready.catch(() => {});
  }

  get sessionId(): string {
    return this.id;
  }
  /** The live views' pixels and real X input (ViewerSession); there once the display is up. */
  get framebuffer(): FrameSource {
    return this.fb!;
  }
  get input(): InputSink {
    return this.xinput!;
  }
  get live(): boolean {
    return this.state === 'starting' || this.state === 'ready';
  }
  get downloadDir(): string {
    return sessionDir(join(this.deps.config.stateDir, 'downloads'), this.id);
  }
  /** Files the agent uploads for file inputs (API.md 4); made at start so the browser's sandbox can bind it. */
  get uploadDir(): string {
    return sessionDir(join(this.deps.config.stateDir, 'uploads'), this.id);
  }

  private async start(): Promise<void> {
    const { config, audit } = this.deps;
    audit.append({ ...this.auditBase(), type: 'session_created', detail: { width: this.params.width, height: this.params.height, auto_close: this.autoClose } });
    this.persist();
    try {
      await mkdir(this.downloadDir, { recursive: true, mode: 0o700 });
      await mkdir(this.uploadDir, { recursive: true, mode: 0o700 });
      this.xvfb = await XvfbDisplay.start({ width: this.params.width, height: this.params.height, tmpRoot: config.framebufferDir, logger: this.log });
      this.own('xvfb', this.xvfb.pid, this.xvfb.dir);
      this.xvfb.process.exited.then(() => this.onProcessExit('display server exited'));
      // Everything else needs only the display: start it side by side. allSettled, so a part
      // that succeeds while another fails is still owned (and closed) by this session.
      const { width, height } = this.params;
      const xvfb = this.xvfb;
      const parts = await Promise.allSettled([
        WindowFitter.start(xvfb, this.log).then((f) => (this.windowFitter = f)),
        Framebuffer.open({ fbPath: xvfb.fbPath, display: xvfb, logger: this.log }).then((f) => (this.fb = f)),
        XInput.open({ display: xvfb, logger: this.log }).then((i) => (this.xinput = i)),
        ChromiumBrowser.launch({ binary: config.chromiumPath, width, height, displayEnv: xvfb.env(), sessionDirs: [this.downloadDir, this.uploadDir], policyFile: chromiumPolicyPath(config.stateDir), logger: this.log, connect: connectPipe }).then((c) => {
          this.chromium = c;
          this.own('chromium', c.pid, c.profileDir);
          c.exited.then(() => this.onProcessExit('browser crashed'));
        }),
        ...(this.params.debug ? [this.startRecorder(xvfb)] : []),
      ]);
      const failed = parts.find((p): p is PromiseRejectedResult => p.status === 'rejected');
      if (failed) throw failed.reason;
      if (!this.live) throw new Error('stopped while starting');
      // The window maps a little after DevTools answers: connect meanwhile.
      const [control] = await Promise.all([
        BrowserControl.connect(this.chromium!.cdp, this.downloadDir, this.log),
        this.windowFitter!.whenFilled(5000),
      ]);
      this.control = control;
      this.control.on('navigated', (url) => this.handoff && this.handoffChanges.urls.push(url));
      this.control.on('download', (d) => {
        this.downloadCount++;
        if (this.handoff) this.handoffChanges.downloads.push(d.name);
        this.audit({ type: 'download_completed', detail: { ...d } });
        this.changed();
      });
      this.pages = new PageUi(control, this.uploadDir, (e) => this.audit(e), () => this.changed());
      if (!this.live) throw new Error('stopped while starting');
      this.state = 'ready';
      this.scheduleIdle();
      this.persist();
      this.changed();
      this.log.info('session ready');
    } catch (e) {
      const detail = e instanceof HandoffError ? (e.detail ?? e.message) : (e as Error).message;
      if (this.live) {
        this.log.error('session failed to start', { error: detail });
        await this.end('crashed', 'browser failed to start');
      }
      // Stopped while starting: end() ran before these parts existed.
      await this.teardown();
      throw e instanceof HandoffError ? e : new HandoffError('browser_failed', 'the browser could not start', {}, detail);
    }
  }

  /** Journals a process (and its temp dir) of this session, so a restarted daemon can reap it. */
  private own(kind: 'xvfb' | 'chromium' | 'ffmpeg', pid: number, dir: string | null): number {
    const row = this.deps.journal.recordOwned(kind, pid, dir, this.id, this.runId);
    this.owned.push(row);
    return row;
  }

  private disown(row: number): void {
    const i = this.owned.indexOf(row);
    if (i === -1) return; // already released by teardown
    this.owned.splice(i, 1);
    this.deps.journal.releaseOwned(row);
  }

  /** debug=true: this run's screen goes to a video file (GET /session/ID/recording). */
  get recordingPath(): string {
    return join(sessionDir(join(this.deps.config.stateDir, 'recordings'), this.id), `${this.runId}.mp4`);
  }

  private async startRecorder(xvfb: XvfbDisplay): Promise<void> {
    const r = await DisplayRecorder.start({ display: xvfb, width: this.params.width, height: this.params.height, path: this.recordingPath, logger: this.log });
    this.recorder = r;
    this.own('ffmpeg', r.pid, null);
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
      if (this.control?.pages().length === 0) return void this.end('stopped', 'last page closed');
    }
    this.log.warn('session process exited', { reason, stderr: this.chromium?.process.stderrTail().slice(-500) });
    void this.end('crashed', reason);
  }

  private browserCloseAsked = false;
  /** The agent is sending Browser.close (noted before Chromium sees it): its exit is a stop. */
  browserCloseRequested(): void {
    this.browserCloseAsked = true;
  }

  stop(reason = 'session stopped'): Promise<void> {
    return this.end('stopped', reason);
  }

  /** Ends the session once: closes what is attached with 4000, then the parts in reverse. */
  end(state: 'stopped' | 'crashed', reason: string): Promise<void> {
    this.ending ??= (async () => {
      this.state = state;
      this.endReason = reason;
      clearTimeout(this.idleTimer);
      this.idleDeadline = null;
      // A handoff still open ends with its session, before the session's row (its timer and
      // webhook must not fire after session_stopped).
      this.completeHandoff('cancelled', 'daemon');
      // Recorded before anyone is told, so a client that sees 4000 finds the row.
      this.audit({ type: state === 'crashed' ? 'session_crashed' : 'session_stopped', detail: { reason } });
      this.persist();
      for (const a of [...this.attached]) a.close(SESSION_ENDED_CLOSE_CODE, reason);
      this.attached.clear();
      this.emit('ended', reason);
      await this.teardown();
      this.changed();
      this.log.info('session ended', { state, reason });
    })();
    return this.ending;
  }

  /** The JPEG screencast of this session, started by its first viewer. */
  get screencast(): Screencast {
    if (!this.live) throw new HandoffError('session_not_found', 'the session has ended');
    this.screencastHub ??= new Screencast(this, this.log.child({ component: 'screencast' }));
    return this.screencastHub;
  }

  /** The WebRTC transport of an enable_rtc session, started by its first viewer. */
  get webrtc(): WebRtcHub {
    if (!this.live || !this.xvfb) throw new HandoffError('session_not_found', 'the session has ended');
    if (!this.params.enableRtc) throw new HandoffError('not_found', 'this session was not started with enable_rtc=true');
    if (this.webrtcHub) return this.webrtcHub;
    const { config } = this.deps;
    const encoders = new Map<string, number>();
    this.webrtcHub = new WebRtcHub(this, {
      display: { name: this.xvfb.name, authFile: this.xvfb.authFile },
      width: this.params.width,
      height: this.params.height,
      credentials: { username: this.params.rtcUsername, password: this.params.rtcPassword ?? '' },
      host: config.host === 'localhost' ? '127.0.0.1' : config.host,
      portRange: config.rtcPorts,
      iceServers: config.iceServers,
      onAuthFailed: (ip, detail) => this.audit({ type: 'auth_failed', transport: 'webrtc', source_ip: ip, actor: 'human', detail }),
      // Encoders come and go with their viewers; each run of one is journaled while it lives.
      onEncoderProcess: (codec, pid) => {
        const row = encoders.get(codec);
        if (row !== undefined) this.disown(row);
        encoders.delete(codec);
        if (pid) encoders.set(codec, this.own('ffmpeg', pid, null));
      },
      logger: this.log.child({ component: 'webrtc' }),
    });
    return this.webrtcHub;
  }

  /** Closes the parts in reverse order of start; idempotent (each part's close is). */
  private async teardown(): Promise<void> {
    await this.webrtcHub?.close(SESSION_ENDED_CLOSE_CODE, this.endReason ?? 'session stopped');
    await this.screencastHub?.close(SESSION_ENDED_CLOSE_CODE, this.endReason ?? 'session stopped');
    this.pages?.close();
    await this.control?.close().catch(() => {});
    await this.chromium?.close();
    await this.recorder?.close();
    await this.xinput?.close();
    await this.fb?.close();
    await this.windowFitter?.close();
    await this.xvfb?.close();
    for (const id of this.owned.splice(0)) this.deps.journal.releaseOwned(id);
  }

  /** Registers a socket or viewer that must close with the session; returns its removal. */
  attach(c: Closable): () => void {
    if (!this.live) {
      c.close(SESSION_ENDED_CLOSE_CODE, this.endReason ?? 'session stopped');
      return () => {};
    }
    this.attached.add(c);
    return () => this.attached.delete(c);
  }

  touch(): void {
    this.lastActivityAt = Date.now();
  }

  audit(e: Omit<AuditInput, 'session_id' | 'run_id'>): void {
    this.deps.audit.append({ ...this.auditBase(), ...e });
  }

  private auditBase() {
    return { session_id: this.id, run_id: this.runId };
  }

  /** API.md 3.4 for human viewers; see ViewerSession. */
  join(opts: { transport: Transport; sourceIp: string; link?: LinkKind }): ViewerHandle {
    this.checkNetwork(opts.sourceIp, opts.transport);
    // No attach without its audit row (README "Fault policy").
    const { audit } = this.deps;
    if (!audit.writable) throw new HandoffError('audit_unavailable', 'the audit trail cannot be written; no new attach until it can', {}, audit.degraded ?? undefined);
    // A control link opened while the agent holds the session starts a handoff (API.md 3.4).
    if (opts.link === 'control' && this.lease.agentConnected && !this.handoff) this.startHandoff('live link opened', opts.transport, { linkStarted: true });
    return new Viewer(this, opts.transport, opts.sourceIp, this.viewerCounts, opts.link);
  }

  /** hitl_allowed_networks (API.md 2): human transports and downloads only from there. */
  checkNetwork(sourceIp: string, transport: string): void {
    const nets = this.params.hitlAllowedNetworks;
    if (nets && !ipAllowed(sourceIp, nets)) {
      this.audit({ type: 'network_denied', transport, source_ip: sourceIp, actor: 'human' });
      throw new HandoffError('network_not_allowed', 'your network may not open this session');
    }
  }

  /**
   * Gives control to humans while the agent stays connected (API.md 7). `liveUrl` is the
   * link sent to the human (webhook); `timeoutMs` ends the handoff with outcome timeout.
   */
  startHandoff(reason: string, by: string, opts: { linkStarted?: boolean; liveUrl?: string; timeoutMs?: number; holdAgentInput?: boolean } = {}): NonNullable<SessionInfo['handoff']> {
    if (this.handoff) return this.handoff;
    const handoff = (this.handoff = { id: randomUUID(), reason, requested_at: new Date().toISOString() });
    this.linkStartedHandoff = opts.linkStarted ?? false;
    this.handoffHoldsInput = opts.holdAgentInput ?? true;
    this.handoffHeldCommands = 0;
    this.handoffChanges = { urls: [], downloads: [] };
    this.audit({ type: 'handoff_requested', transport: by, detail: { handoff_id: handoff.id, reason } });
    if (opts.timeoutMs) {
      this.handoffTimer = setTimeout(() => this.handoff?.id === handoff.id && this.completeHandoff('timeout', 'daemon'), opts.timeoutMs);
      this.handoffTimer.unref();
    }
    if (!opts.linkStarted) this.deps.notify?.({ type: 'handoff_requested', session_id: this.id, handoff_id: handoff.id, reason, live_url: opts.liveUrl ?? null });
    this.lease.setHandoff(true);
    this.changed();
    return handoff;
  }

  /** Whether the agent's input and navigation wait now: a human has control in a handoff that holds it. */
  get holdsAgentInput(): boolean {
    return !!this.handoff && this.handoffHoldsInput && this.lease.humanControllers > 0;
  }

  countHeldCommand(): void {
    this.handoffHeldCommands++;
  }

  /** A human left: a handoff their link started ends when nobody controls any more. */
  humanLeft(by: Transport): void {
    if (this.handoff && this.linkStartedHandoff && this.lease.humanControllers === 0) this.completeHandoff('done', by);
  }

  viewerState(): ViewerState {
    return { attachment: this.live ? this.lease.attachment : 'none', handoff: this.handoff, viewers: { ...this.viewerCounts }, downloads: this.downloadCount, tabs: this.pages?.tabs, fileRequest: this.pages?.fileRequest ?? null };
  }

  onViewerStateChange(listener: () => void): () => void {
    this.on('change', listener);
    return () => this.off('change', listener);
  }

  completeHandoff(outcome: 'done' | 'failed' | 'timeout' | 'cancelled', by: string): void {
    if (!this.handoff) return;
    const { id, requested_at } = this.handoff;
    this.handoff = null;
    clearTimeout(this.handoffTimer);
    const durationMs = Date.now() - Date.parse(requested_at);
    this.audit({ type: 'handoff_completed', transport: by, detail: { handoff_id: id, outcome, duration_ms: durationMs, held_commands: this.handoffHeldCommands } });
    this.deps.notify?.({ type: 'handoff_completed', session_id: this.id, handoff_id: id, outcome, by, duration_ms: durationMs });
    this.emit('handoffCompleted', { handoffId: id, outcome, by, durationMs, changes: this.handoffChanges });
    // Control goes back to the agent: viewers in control become view-only (see Viewer).
    this.lease.setHandoff(false);
    this.changed();
  }

  /** Idle timer: runs only while nobody is attached (API.md 3.1 `timeout`). */
  private scheduleIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleDeadline = null;
    if (this.state !== 'ready' || this.lease.attachment !== 'none') return;
    const ms = this.params.timeoutS * 1000;
    this.idleDeadline = Date.now() + ms;
    this.idleTimer = setTimeout(() => void this.stop('idle timeout'), ms);
    this.idleTimer.unref();
  }

  changed(): void {
    this.emit('change');
  }

  private persist(): void {
    this.deps.journal.saveSession(this.id, this.runId, this.state, this.info(this.deps.config.host));
  }

  info(publicHost: string): SessionInfo {
    const attachment = this.live ? this.lease.attachment : 'none';
    const { vncPort } = this.deps.config;
    const vnc = this.params.enableVnc && vncPort !== 0;
    return {
      session_id: this.id,
      run_id: this.runId,
      state: this.state,
      attachment,
      attached_by: attachment === 'none' ? '' : attachment,
      auto_close: this.autoClose,
      width: this.params.width,
      height: this.params.height,
      created_at: this.createdAt.toISOString(),
      last_activity_at: new Date(this.lastActivityAt).toISOString(),
      expires_at: this.idleDeadline ? new Date(this.idleDeadline).toISOString() : null,
      transports: { screencast: true, webrtc: this.params.enableRtc, vnc },
      viewers: { ...this.viewerCounts },
      vnc_url: vnc ? `vnc://${this.runId}@${hostForUrl(publicHost)}:${vncPort}` : null,
      debug: this.params.debug,
      handoff: this.handoff,
      debug_port: this.live ? this.debugPort : null,
    };
  }
}

export function hostForUrl(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}
