// The kit's shared types: the viewer status, the /info answer, and the transport interface.
import type { Endpoints } from './util.js';
import type { ControlInput, InputSink } from './input.js';

export type TransportName = 'screencast' | 'vnc' | 'webrtc';
export type ViewerState = 'connecting' | 'live' | 'view-only' | 'ended' | 'expired' | 'error';
export type Outcome = 'done' | 'failed';

export interface Handoff { id: string; reason: string; requested_at?: string }

/** GET /live/TOKEN/info (API.md 5). */
export interface LiveInfo {
  sessionId: string;
  width?: number;
  height?: number;
  transports?: Partial<Record<TransportName, boolean>>;
  attachment: string | null;
  handoff?: Handoff | null;
  viewOnly?: boolean;
  link?: 'control' | 'view';
  downloads?: number;
}

/** What the viewer shows; a copy goes to 'status' and 'state' listeners. */
export interface Status {
  state: ViewerState;
  transport: TransportName;
  sessionId: string | null;
  attachment: string | null;
  canControl: boolean;
  handoff: Handoff | null;
  viewers: Record<string, number> | null;
  fps: number;
  message: string;
  /** Why the screencast shows in place of the transport asked for. */
  fallback: string;
  /** WebRTC: the codec, the peer connection's state, the measured latency. */
  codec: string | null;
  media: string | null;
  latencyMs: number | null;
  viewLink: boolean;
}

export interface KitOptions {
  url: string;
  transport?: TransportName;
  password?: string;
  username?: string;
  onStateChange?: (s: Status) => void;
}

/** Credentials asked in the page, kept for reconnects. */
export interface Credentials { vncPassword: string; rtcUsername: string; rtcPassword: string }

/** An open transport. */
export interface Link {
  close(): void;
  /** Sends Done / Can't do it over the transport's own channel; without it the kit POSTs. */
  sendHandoff?(outcome: Outcome): void;
  /** Tab and file messages (docs/screencast-protocol.md, issue 11), where the transport carries them. */
  page?: PageChannel;
}

/** A session's page, from the viewer state (issue 11). */
/** `agent`: the page the agent last acted on. */
export interface PageTab { id: string; title: string; url?: string; visible: boolean; agent?: boolean }
export interface FileRequest { id: string; multiple: boolean }
/** After a tap: does the remote focused field take text, and which keyboard (never its value). */
export interface FocusHint { editable: boolean | null; kind?: string; inputMode?: string }

/** Where tab and file messages go; `buffered` is what the transport has not sent yet (bytes). */
export interface PageChannel {
  send(msg: object): void;
  buffered(): number;
}

/** What a transport reports about the session's pages: tabs, file requests, remote copies. */
export interface PageEvents {
  state(tabs: PageTab[], fileRequest: FileRequest | null): void;
  clipboard(text: string): void;
  /** `file_done`, or an `error` that names a request. */
  fileAnswer(msg: { type: string; request?: string; code?: string; message?: string }): void;
  /** A `focus` message (the answer to a tap's probe). */
  focus(hint: FocusHint): void;
}

/** What the viewer lends a transport for one connection. */
export interface TransportContext {
  readonly ep: Endpoints;
  /** The last /info answer. */
  readonly info: LiveInfo;
  /** Where the transport puts its surface. */
  readonly stage: HTMLElement;
  readonly status: Readonly<Status>;
  readonly credentials: Credentials;
  /** False once this connection is no longer the one shown (callbacks bail out). */
  current(): boolean;
  /** Applies a status change; a `message` is shown over the picture, with `extra` controls. */
  update(patch: Partial<Status>, extra?: Node): void;
  /** The connection works: the next failure starts the backoff over. */
  connected(): void;
  /** A final state: no reconnect. */
  finish(state: ViewerState, message: string): void;
  /** Reconnects after a backoff, saying why. */
  retry(message: string): void;
  /** Shows the screencast in place of this transport, saying why. */
  fallBack(reason: string): void;
  /** Closes this connection (the transport's callbacks go stale). */
  closeLink(): void;
  /** Connects again from the start (after new credentials). */
  reconnect(): void;
  /** A fresh /info answer (polling transports). */
  applyInfo(info: LiveInfo): void;
  /** Sends the viewer's input on `surface` (mouse, keys, paste, touch, the phone controls) to `sink`. */
  input(surface: HTMLElement, sink: InputSink): ControlInput;
  /** The transport's count of downloads; the list is fetched again when it changed. */
  downloadsChanged(count: number): void;
  readonly pages: PageEvents;
}

export type Transport = (ctx: TransportContext) => Link;
