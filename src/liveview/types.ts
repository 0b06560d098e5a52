import type { FrameSource, InputSink } from '../display/types.js';
import type { LinkKind } from './tokens.js';

export type Transport = 'screencast' | 'webrtc' | 'vnc';

/** API.md 3.5: every socket of a session that ends closes with this code and the reason. */
export const SESSION_ENDED_CLOSE_CODE = 4000;

/**
 * What a live view transport sees of a session. sessions/ implements it; transports never
 * import sessions/ (DESIGN.md dependency direction).
 */
export interface ViewerSession {
  readonly sessionId: string;
  readonly runId: string;
  readonly framebuffer: FrameSource;
  readonly input: InputSink;
  /**
   * Registers a human viewer. Control follows API.md 3.4: view-only while an agent is attached
   * and no handoff is active. Throws HandoffError('network_not_allowed') when the source is
   * outside the session's hitl_allowed_networks (and audits it). `link` is the kind of live
   * link the viewer came with (none: a native VNC client).
   */
  join(opts: { transport: Transport; sourceIp: string; link?: LinkKind }): ViewerHandle;
  /** What a viewer shows in its status line; `onViewerStateChange` fires when any of it changes. */
  viewerState(): ViewerState;
  onViewerStateChange(listener: () => void): () => void;
  /** The session's pages and file requests, once its browser is up (viewers' tab strip, file picker). */
  readonly pages?: PagePort;
}

/** One page of the session as the viewer's tab strip shows it. */
export interface PageTab {
  id: string;
  title: string;
  url: string;
  /** Shown now (its tab is the front one of its window). */
  visible: boolean;
  /** The page the agent last acted on (while an agent is connected). */
  agent: boolean;
}

/** A page asked for a file: a viewer in control may answer with files of the human's own. */
export interface FileRequest {
  id: string;
  multiple: boolean;
}

export interface UploadedFile {
  name: string;
  size: number;
  sha256: string;
}

/** What viewers may do with the session's pages (sessions/ implements it). */
export interface PagePort {
  /** The page's open file request, if any: a human's upload must answer it. */
  readonly fileRequest: FileRequest | null;
  tabAction(action: 'activate' | 'close' | 'new' | 'reload', id?: string): Promise<void>;
  /** Stores the files, fills the input that asked, audits `file_uploaded`. Rejects if the request is gone. */
  answerFile(id: string, files: { name: string; data: Buffer }[], by: { transport: Transport; sourceIp: string }): Promise<UploadedFile[]>;
  cancelFile(id: string): Promise<void>;
  /** The shown page's focused field: whether it takes text and which keyboard, never its value. */
  focusHint(): Promise<FocusHint>;
}

/**
 * What a phone viewer needs to open the right keyboard (issue 12): `editable` null when focus is
 * in a frame the daemon cannot look into. Kind and inputMode come from fixed lists.
 */
export interface FocusHint {
  editable: boolean | null;
  kind?: 'text' | 'search' | 'email' | 'url' | 'tel' | 'number' | 'password' | 'multiline';
  inputMode?: 'none' | 'text' | 'decimal' | 'numeric' | 'tel' | 'search' | 'email' | 'url';
}

export interface ViewerState {
  attachment: 'none' | 'agent' | 'human';
  handoff: null | { id: string; reason: string; requested_at: string };
  viewers: Record<Transport, number>;
  downloads: number;
  tabs?: PageTab[];
  fileRequest?: FileRequest | null;
}

export interface ViewerHandle {
  /** Where the viewer connects from (audit rows of what it does). */
  readonly sourceIp?: string;
  /** Whether this viewer's input may reach the browser right now. */
  readonly canControl: boolean;
  /**
   * It came with a view link (API.md 3.4: it may get input, never more): it is not sent the
   * session's copies or full tab URLs and may not answer file requests or act on tabs.
   */
  readonly viewLink?: boolean;
  /** Fires when canControl changes. */
  onControlChange(listener: (canControl: boolean) => void): void;
  /** Fires once when the session ends; the transport closes its connection with `reason`. */
  onEnd(listener: (reason: string) => void): void;
  /**
   * The viewer's Done / Can't do it buttons (API.md 7). False, and nothing happens, for a
   * viewer that came with a view link: only a control link may end a handoff.
   */
  completeHandoff(outcome: 'done' | 'failed'): boolean;
  /** Idempotent. The last controlling viewer leaving resets input and the attachment. */
  leave(): void;
}
