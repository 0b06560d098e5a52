// mount(): the viewer controller. Owns the status, the connection lifecycle (connect, retry with
// backoff, fall back to the screencast), downloads and the handoff answer; the transports draw
// and carry input, the UI shows.
import { ensureStyles } from './dom.js';
import { backoffDelay, liveEndpoints } from './util.js';
import { createUi, TRANSPORT_TEXT, type DownloadFile } from './ui.js';
import { createControls } from './controls.js';
import { KEYSYM } from './keyboard.js';
import { createPages } from './pages.js';
import { screencast } from './transports/screencast.js';
import { vnc } from './transports/vnc.js';
import { webrtc } from './transports/webrtc.js';
import type { Credentials, KitOptions, Link, LiveInfo, Outcome, Status, Transport, TransportContext, TransportName, ViewerState } from './types.js';

const TRANSPORTS: Record<TransportName, Transport> = { screencast, vnc, webrtc };

type Listener = (detail: any) => void;

export interface Viewer {
  setTransport(t: TransportName): void;
  /** Closes the connection and removes the viewer from the element. */
  disconnect(): void;
  /** Events: 'state' (state or transport changed), 'status' (anything shown changed), 'downloads'. Returns an unsubscribe function. */
  on(event: string, cb: Listener): () => void;
  readonly state: Status;
}

export function mount(element: Element, options: KitOptions): Viewer {
  if (!(element instanceof Element)) throw new Error('HandoffKit.mount: element is required');
  const opts: KitOptions = Object.assign({ transport: 'screencast' }, options);
  if (!Object.prototype.hasOwnProperty.call(TRANSPORT_TEXT, opts.transport!)) throw new Error('HandoffKit.mount: unknown transport ' + opts.transport);
  const ep = liveEndpoints(opts.url);
  ensureStyles(ep.origin);

  const listeners: Record<string, Listener[]> = {};
  const status: Status = {
    state: 'connecting', transport: opts.transport!, sessionId: null, attachment: null,
    canControl: false, handoff: null, viewers: null, fps: 0, message: '', fallback: '',
    codec: null, media: null, latencyMs: null, viewLink: false,
  };
  const credentials: Credentials = { vncPassword: opts.password || '', rtcUsername: opts.username || '', rtcPassword: opts.password || '' };
  let info: LiveInfo | null = null;
  let link: Link | null = null; // the open transport
  let generation = 0; // bumps on every (re)connect; stale callbacks compare and bail out
  let attempt = 0;
  let retryTimer = 0;
  let downloadsSeen: number | undefined; // the count the list was last fetched for
  let answered: string | null = null; // the handoff id Done / Can't do it was pressed for

  const ui = createUi({ pickTransport: setTransport, answer: finishHandoff }, status);
  element.replaceChildren(ui.root);
  const controls = createControls(ui.root, ui.stage, ui.view, ui.keys, () => pages.probeFocus());
  const pages = createPages(ui.view, () => controls.press(KEYSYM.Escape), () => controls.focus(), (hint) => controls.remoteFocus(hint));
  ui.view.before(pages.el);
  const tooLarge = () => update({ message: 'That text is too large to paste (1 MiB at most).' });

  // --- status and events
  function emit(name: string, detail: unknown): void {
    for (const cb of listeners[name] || []) {
      try {
        cb(detail);
      } catch (e) {
        setTimeout(() => { throw e; });
      }
    }
  }

  function update(patch: Partial<Status>, extra?: Node): void {
    const before = status.state + '/' + status.transport;
    Object.assign(status, patch);
    if ('message' in patch) ui.showNotice(status.message, extra);
    ui.render(status, answered);
    controls.render(status);
    pages.render(status);
    const snapshot = { ...status };
    emit('status', snapshot);
    if (before !== status.state + '/' + status.transport) {
      emit('state', snapshot);
      if (typeof opts.onStateChange === 'function') opts.onStateChange(snapshot);
      element.dispatchEvent(new CustomEvent('handoff-state', { detail: snapshot }));
    }
  }

  // --- connection lifecycle
  function closeLink(): void {
    clearTimeout(retryTimer);
    if (link) link.close();
    link = null;
    pages.setChannel(null);
    generation++;
  }

  function finish(state: ViewerState, message: string): void {
    closeLink();
    ui.stage.replaceChildren();
    pages.reset();
    update({ state, message, fps: 0, handoff: null, canControl: false });
  }

  function retry(message: string): void {
    closeLink();
    const delay = backoffDelay(attempt++);
    const gen = generation;
    update({ state: 'connecting', fps: 0, message: message + ' Reconnecting in ' + Math.ceil(delay / 1000) + ' s…' });
    retryTimer = window.setTimeout(() => { if (gen === generation) connect(); }, delay);
  }

  async function connect(): Promise<void> {
    closeLink();
    const gen = generation;
    update({ state: 'connecting', message: '', fps: 0, codec: null, media: null, latencyMs: null });
    let res: Response;
    try {
      res = await fetch(ep.base + '/info', { cache: 'no-store' });
    } catch {
      if (gen === generation) retry('Cannot reach the host.');
      return;
    }
    if (gen !== generation) return;
    if (res.status === 410) return finish('expired', 'This live view link has expired. Ask for a new one.');
    if (res.status === 404) {
      // A made-up or revoked link is not an ended session: the error code tells them apart.
      const body = await res.json().catch(() => null);
      if (gen !== generation) return;
      if (!body || !body.error || body.error.code !== 'session_not_found') return finish('error', 'This live view link is not valid. Ask for a new one.');
      return finish('ended', 'The session has ended.');
    }
    if (res.status === 403) return finish('error', 'This network may not view the session.');
    if (!res.ok) return retry('The host answered ' + res.status + '.');
    const answer: LiveInfo | null = await res.json().catch(() => null);
    if (gen !== generation) return;
    if (!answer) return retry('The host sent an unreadable answer.');
    info = answer;
    renderTabs(answer);
    applyInfo(answer);
    if (status.transport !== 'screencast' && !(answer.transports && answer.transports[status.transport])) {
      return fallBack(TRANSPORT_TEXT[status.transport] + ' is not enabled for this session.');
    }
    link = TRANSPORTS[status.transport](context(gen, answer));
    pages.setChannel(link.page || null);
  }

  /** What a transport may do, for the connection of generation `gen`. */
  function context(gen: number, first: LiveInfo): TransportContext {
    return {
      ep,
      get info() { return info || first; },
      stage: ui.stage,
      status,
      credentials,
      current: () => gen === generation,
      update,
      connected: () => { attempt = 0; },
      finish,
      retry,
      fallBack,
      closeLink,
      reconnect: () => { connect(); },
      applyInfo,
      input: (surface, sink) => controls.attach(surface, sink, tooLarge),
      downloadsChanged: (count) => { if (count !== downloadsSeen) refreshDownloads(count); },
      pages: pages.events,
    };
  }

  function renderTabs(i: LiveInfo): void {
    const available: TransportName[] = ['screencast'];
    if (i.transports && i.transports.vnc) available.push('vnc');
    if (i.transports && i.transports.webrtc) available.push('webrtc');
    if (ui.setTabs(available)) ui.render(status, answered);
  }

  function applyInfo(i: LiveInfo): void {
    info = i;
    update({ sessionId: i.sessionId, attachment: i.attachment, handoff: i.handoff || null, viewLink: i.link === 'view' });
    // Without a count in info, every info read refreshes the list.
    if (typeof i.downloads !== 'number' || i.downloads !== downloadsSeen) refreshDownloads(i.downloads);
  }

  function setTransport(t: TransportName): void {
    if (!Object.prototype.hasOwnProperty.call(TRANSPORT_TEXT, t)) throw new Error('HandoffKit: unknown transport ' + t);
    if (status.state === 'ended' || status.state === 'expired') return;
    attempt = 0;
    update({ transport: t, fallback: '' });
    connect();
  }

  function fallBack(reason: string): void {
    setTransport('screencast');
    update({ fallback: reason + ' Showing the screencast instead.' });
  }

  // --- downloads and handoff buttons (shared by every transport)
  async function refreshDownloads(count: number | undefined): Promise<void> {
    downloadsSeen = count;
    let files: DownloadFile[];
    try {
      const res = await fetch(ep.base + '/downloads', { cache: 'no-store' });
      if (!res.ok) return;
      files = (await res.json()).files || [];
    } catch {
      return;
    }
    ui.showDownloads(files, (name) => ep.base + '/downloads/' + encodeURIComponent(name));
    emit('downloads', files);
  }

  async function finishHandoff(outcome: Outcome): Promise<void> {
    answered = status.handoff && status.handoff.id;
    ui.render(status, answered);
    if (link && link.sendHandoff) return link.sendHandoff(outcome);
    try {
      const res = await fetch(ep.base + '/handoff', {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ outcome }),
      });
      if (!res.ok) throw new Error('HTTP ' + res.status);
      update({ handoff: null });
    } catch (e) {
      answered = null;
      update({ message: 'Could not send the answer (' + (e as Error).message + '). Try again.' });
    }
  }

  connect();
  return {
    setTransport,
    disconnect() {
      closeLink();
      ui.root.remove();
      for (const k of Object.keys(listeners)) delete listeners[k];
    },
    on(event, cb) {
      (listeners[event] = listeners[event] || []).push(cb);
      return () => { listeners[event] = (listeners[event] || []).filter((x) => x !== cb); };
    },
    get state() { return { ...status }; },
  };
}
