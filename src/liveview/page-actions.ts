import type { PagePort, Transport } from './types.js';

/**
 * After a tap, the page's focus is read at these delays (ms): the click reaches the page some
 * ms after its message, and a page may move the focus itself once clicked.
 */
const FOCUS_PROBES_MS = [40, 150, 400, 900];
import type { FileMessage, TabMessage } from './page-messages.js';

/** What one human may upload for one file request, all files together (README "uploads"). */
export const MAX_HUMAN_UPLOAD_BYTES = 25 * 1024 * 1024;
const MAX_FILES = 20;

/**
 * One viewer's tab and file messages (issue 11 items 1, 2): tab actions go to the session's
 * pages; file chunks are gathered (capped) until file_end, then handed over in one piece.
 * The caller checks control first. Answers go back through `send`.
 */
export class ViewerPageActions {
  private request?: string;
  private files: { name: string; chunks: Buffer[]; size: number; declared: number }[] = [];
  private total = 0;
  private focusProbes: NodeJS.Timeout[] = [];

  constructor(
    private readonly port: () => PagePort | undefined,
    private readonly by: { transport: Transport; sourceIp: string },
    private readonly send: (m: object) => void,
  ) {}

  handle(m: TabMessage | FileMessage): void {
    const port = this.port();
    const fail = (code: string, message: string, request?: string) => this.send({ type: 'error', code, message, ...(request ? { request } : {}) });
    if (!port) return fail('not_found', 'the browser is not up');
    switch (m.type) {
      case 'tab':
        if (m.action === 'focus') return this.probeFocus(port);
        port.tabAction(m.action, m.id).catch((e: Error) => fail('bad_request', `tab ${m.action} failed: ${e.message.slice(0, 200)}`));
        return;
      case 'file_start':
        // Only an open request is answered: nothing is buffered for a made-up one (security review).
        if (port.fileRequest?.id !== m.request) return fail('bad_request', 'no such file request (it was answered or cancelled)', m.request);
        if (this.request !== m.request) this.reset(m.request);
        if (this.files.length >= MAX_FILES) return this.abort(fail, 'bad_request', `at most ${MAX_FILES} files`);
        if (this.total + m.size > MAX_HUMAN_UPLOAD_BYTES) return this.abort(fail, 'bad_request', `an upload is at most ${MAX_HUMAN_UPLOAD_BYTES} bytes`);
        this.files.push({ name: m.name, chunks: [], size: 0, declared: m.size });
        return;
      case 'file_chunk': {
        const f = this.files.at(-1);
        if (this.request !== m.request || !f) return fail('bad_request', 'file_chunk before file_start', m.request);
        f.size += m.data.length;
        this.total += m.data.length;
        if (f.size > f.declared || this.total > MAX_HUMAN_UPLOAD_BYTES) return this.abort(fail, 'bad_request', 'more bytes than the file_start size');
        f.chunks.push(m.data);
        return;
      }
      case 'file_end': {
        if (this.request !== m.request || this.files.length === 0) return fail('bad_request', 'file_end without files', m.request);
        const files = this.files.map((f) => ({ name: f.name, data: Buffer.concat(f.chunks) }));
        this.reset(undefined);
        port.answerFile(m.request, files, this.by).then(
          (stored) => this.send({ type: 'file_done', request: m.request, files: stored }),
          (e: Error & { code?: string }) => fail(e.code ?? 'internal', e.message.slice(0, 200), m.request),
        );
        return;
      }
      case 'file_cancel':
        if (this.request === m.request) this.reset(undefined);
        port.cancelFile(m.request).catch(() => {});
        return;
    }
  }

  /** Sends `focus` hints after a tap: the first read, then each change (a new tap starts over). */
  private probeFocus(port: PagePort): void {
    for (const t of this.focusProbes) clearTimeout(t);
    let last = '';
    const read = () =>
      port.focusHint().then((hint) => {
        const text = JSON.stringify(hint);
        if (text === last) return;
        last = text;
        this.send({ type: 'focus', ...hint });
      }, () => {});
    this.focusProbes = FOCUS_PROBES_MS.map((ms) => {
      const t = setTimeout(read, ms);
      t.unref();
      return t;
    });
  }

  private abort(fail: (code: string, message: string, request?: string) => void, code: string, message: string): void {
    const request = this.request;
    this.reset(undefined);
    fail(code, message, request);
  }

  private reset(request: string | undefined): void {
    this.request = request;
    this.files = [];
    this.total = 0;
  }
}
