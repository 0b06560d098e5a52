// A page's file request (issue 11 item 1): no native chooser opens in the session; the human
// picks (or drops onto the picture) a file of their own device, sent in base64 chunks over the
// live connection (docs/screencast-protocol.md: file_start, file_chunk..., file_end; file_cancel).
import { h } from './dom.js';
import { formatSize } from './util.js';
import type { FileRequest, PageChannel } from './types.js';

/** The daemon's caps per request (docs/screencast-protocol.md). */
export const MAX_UPLOAD_BYTES = 25 * 1024 * 1024;
export const MAX_UPLOAD_FILES = 20;
/** Raw bytes per chunk: 384 KiB is exactly the protocol's 512 KiB of base64. */
const CHUNK_BYTES = 384 * 1024;
/** Chunks wait while the transport holds more than this unsent. */
const MAX_BUFFERED = 4 * 1024 * 1024;
const MAX_NAME = 1024;

export interface FilePanel {
  el: HTMLElement;
  render(request: FileRequest | null, channel: PageChannel | null, canControl: boolean): void;
  /** The daemon's `file_done` or `error` for a request. */
  answer(msg: { type: string; request?: string; code?: string; message?: string }): void;
}

/** `dropZone` takes dropped files while a request is open. */
export function filePanel(dropZone: HTMLElement): FilePanel {
  const title = h('p', { class: 'hk-file-title', text: 'The page asks for a file' });
  const picker = h('input', { type: 'file', class: 'hk-file-input', 'data-handoff-file': true, 'aria-label': 'Choose a file from your device' });
  const note = h('span', { class: 'hk-file-note', role: 'status' });
  const cancel = h('button', { type: 'button', class: 'hk-btn', text: 'Cancel', onclick: () => cancelRequest() });
  const el = h('section', { class: 'hk-filereq', 'aria-label': 'File request', hidden: true }, [
    title,
    h('div', { class: 'hk-actions' }, [picker, cancel, note]),
    h('p', { class: 'hk-file-hint', text: 'Choose a file of yours, or drop it onto the picture. It goes to the page only.' }),
  ]);

  let request: FileRequest | null = null;
  let channel: PageChannel | null = null;
  let control = false;
  let sending: string | null = null; // the request an upload is running for

  picker.addEventListener('change', () => void upload(Array.from(picker.files || [])));
  dropZone.addEventListener('dragover', (ev) => {
    if (!request || !control) return;
    ev.preventDefault();
    if (ev.dataTransfer) ev.dataTransfer.dropEffect = 'copy';
  });
  dropZone.addEventListener('drop', (ev) => {
    if (!request || !control) return;
    ev.preventDefault();
    void upload(Array.from(ev.dataTransfer?.files || []));
  });

  const stale = (id: string, ch: PageChannel) => !request || request.id !== id || channel !== ch;

  async function upload(picked: File[]): Promise<void> {
    const req = request;
    const ch = channel;
    if (!req || !ch || !control || sending === req.id || picked.length === 0) return;
    const files = req.multiple ? picked : picked.slice(0, 1);
    const total = files.reduce((n, f) => n + f.size, 0);
    if (files.length > MAX_UPLOAD_FILES) return say('At most ' + MAX_UPLOAD_FILES + ' files at a time.');
    if (total > MAX_UPLOAD_BYTES) return say('Too large: ' + formatSize(total) + ' (' + formatSize(MAX_UPLOAD_BYTES) + ' at most).');
    sending = req.id;
    picker.disabled = true;
    try {
      let sent = 0;
      for (const f of files) {
        ch.send({ type: 'file_start', request: req.id, name: (f.name || 'file').slice(0, MAX_NAME), size: f.size });
        for (let at = 0; at < f.size; at += CHUNK_BYTES) {
          const data = await base64(f.slice(at, at + CHUNK_BYTES));
          while (ch.buffered() > MAX_BUFFERED && !stale(req.id, ch)) await new Promise((r) => setTimeout(r, 50));
          if (stale(req.id, ch)) return;
          ch.send({ type: 'file_chunk', request: req.id, data });
          sent += Math.min(CHUNK_BYTES, f.size - at);
          say('Sending… ' + Math.floor((sent / Math.max(1, total)) * 100) + ' %');
        }
      }
      ch.send({ type: 'file_end', request: req.id });
      say('Sent, waiting for the page…');
    } catch (e) {
      say('Could not read the file: ' + (e as Error).message);
      sending = null;
      picker.disabled = false;
    }
  }

  function cancelRequest(): void {
    if (request && channel) channel.send({ type: 'file_cancel', request: request.id });
    say('Cancelled.');
  }

  function say(text: string): void {
    note.textContent = text;
  }

  return {
    el,
    render(next, ch, canControl) {
      control = canControl;
      if (ch !== channel && sending) sending = null; // a new connection: the daemon forgot the partial upload
      channel = ch;
      if ((next && next.id) !== (request && request.id)) {
        picker.value = '';
        sending = null;
        if (next) say('');
      }
      request = next;
      el.hidden = !next;
      if (next) {
        title.textContent = next.multiple ? 'The page asks for files' : 'The page asks for a file';
        picker.multiple = next.multiple;
      }
      picker.disabled = !next || !ch || !canControl || sending === (next && next.id);
      cancel.disabled = !next || !ch || !canControl;
    },
    answer(msg) {
      if (!request || msg.request !== request.id) return;
      sending = null;
      picker.disabled = !channel || !control;
      if (msg.type === 'file_done') return say('Sent.');
      picker.value = '';
      say('The page did not take the file: ' + (msg.message || msg.code || 'error'));
    },
  };
}

/** A blob's bytes as base64 (a data: URL without its prefix). */
function base64(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(String(r.result).replace(/^data:[^,]*,/, ''));
    r.onerror = () => reject(r.error || new Error('read failed'));
    r.readAsDataURL(blob);
  });
}
