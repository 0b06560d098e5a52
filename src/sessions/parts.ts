import type { WebSocket } from 'ws';
import type { FrameSource, InputSink } from '../display/types.js';
import type { AgentChannel } from '../cdp/pipe-mux.js';
import type { BrowserControl, CompletedDownload, TargetInfo } from '../browser/control.js';
import type { ViewerHandle, ViewerSession } from '../liveview/types.js';
import type { LinkKind } from '../liveview/tokens.js';
import type { Logger } from '../util/logger.js';

/**
 * The parts a Session coordinates, as the Session sees them. main.ts injects the factories
 * (real-parts.ts makes the real ones; unit tests pass fakes). A factory may hand out a part
 * it started earlier (a warm pool's spare display and browser): the Session only asks for
 * one of the right size and owns it from then on.
 */

/** A process a part runs, journaled while it lives so a restarted daemon can reap it. */
export interface OwnedProcess {
  kind: 'xvfb' | 'chromium' | 'ffmpeg';
  pid: number;
  dir: string | null;
}

/** Closing is idempotent and awaits the real exit of whatever the part runs. */
export interface Part {
  close(): Promise<void>;
}

/** An X display with its framebuffer reader, XTest input and the window fitter. */
export interface DisplayPart extends Part {
  /** For x11grab (WebRTC, the recorder): DISPLAY and XAUTHORITY. */
  readonly address: { name: string; authFile: string };
  readonly framebuffer: FrameSource;
  readonly input: InputSink;
  readonly processes: readonly OwnedProcess[];
  /** Settles when the X server exits (on its own or closed). */
  readonly exited: Promise<unknown>;
  /** Resolves once the browser window fills the screen (false after `timeoutMs`). */
  whenFilled(timeoutMs: number): Promise<boolean>;
}

/** The session's Chromium and the daemon's own use of it (targets, downloads). */
export interface BrowserPart extends Part {
  readonly processes: readonly OwnedProcess[];
  /** Settles when Chromium exited and its pipe was drained. */
  readonly exited: Promise<unknown>;
  stderrTail(): string;
  /** A DevTools session for an agent: a page's (`targetId`) or the browser's. */
  openAgent(targetId?: string): Promise<AgentChannel>;
  pages(): TargetInfo[];
  hasTarget(targetId: string): boolean;
  version(): Promise<{ product: string; userAgent: string; protocolVersion: string; jsVersion: string; revision: string }>;
  /** Opens a tab (Chrome's /json/new); its target id. */
  openTab(url: string): Promise<string>;
  on(event: 'download', listener: (d: CompletedDownload) => void): unknown;
  on(event: 'navigated', listener: (url: string) => void): unknown;
  /** The page control behind it, for the viewers' tab strip and file requests (fakes leave it out). */
  readonly control?: BrowserControl;
}

export interface RecorderPart extends Part {
  readonly processes: readonly OwnedProcess[];
}

/** A live view transport hub (liveview/screencast, liveview/webrtc). */
export interface ScreencastPart {
  addViewer(ws: WebSocket, join: () => ViewerHandle, link: LinkKind): void;
  close(code: number, reason: string): Promise<void>;
}

export interface WebRtcPart {
  addViewer(ws: WebSocket, sourceIp: string, join: () => ViewerHandle, link: LinkKind): void;
  close(code: number, reason: string): Promise<void>;
}

export interface BrowserOptions {
  display: DisplayPart;
  width: number;
  height: number;
  /** The session's downloads and uploads: the sandbox binds them writable. */
  downloadDir: string;
  uploadDir: string;
  /**
   * The browser's user data: absent, a fresh profile deleted at close; given (a persistent
   * profile), used as is and kept.
   */
  userDataDir?: string;
  logger: Logger;
}

export interface WebRtcPartOptions {
  display: DisplayPart;
  width: number;
  height: number;
  credentials: { username: string | null; password: string };
  onAuthFailed(sourceIp: string, detail: { failures: number; locked_ms: number; refused_unchecked: number }): void;
  /** An encoder's ffmpeg started (pid) or exited (null): the session journals it. */
  onEncoderProcess(codec: string, pid: number | null): void;
  logger: Logger;
}

export interface SessionFactories {
  display(o: { width: number; height: number; logger: Logger }): Promise<DisplayPart>;
  browser(o: BrowserOptions): Promise<BrowserPart>;
  recorder(o: { display: DisplayPart; width: number; height: number; path: string; logger: Logger }): Promise<RecorderPart>;
  screencast(view: ViewerSession, logger: Logger): ScreencastPart;
  webrtc(view: ViewerSession, o: WebRtcPartOptions): WebRtcPart;
}

/**
 * Start is a disposable stack (DESIGN.md): each part pushed is closed, in reverse, by
 * `close()`, also when a later part failed to start. Idempotent.
 */
export class PartStack {
  private readonly parts: { what: string; part: Part }[] = [];
  private readonly late: Promise<void>[] = [];
  private closing?: Promise<void>;

  constructor(private readonly onError: (what: string, e: Error) => void = () => {}) {}

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Takes ownership of `part`; a part arriving after close() is closed at once. */
  push<P extends Part>(what: string, part: P): P {
    if (this.closing) this.late.push(part.close().catch((e: Error) => this.onError(what, e)));
    else this.parts.push({ what, part });
    return part;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const { what, part } of this.parts.reverse()) {
        try {
          await part.close();
        } catch (e) {
          this.onError(what, e as Error);
        }
      }
      this.parts.length = 0; // closed parts are not kept (their buffers with them)
    })();
    return this.closing;
  }

  /** close(), and also the parts that arrived after it. */
  async settle(): Promise<void> {
    await this.close();
    await Promise.all(this.late);
  }
}
