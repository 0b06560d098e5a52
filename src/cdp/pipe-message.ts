/**
 * One message Chromium wrote on the DevTools pipe, kept as the chunks it arrived in so a
 * large one (a 6 MB screenshot) is copied once at most, on its way to the agent.
 *
 * Routing needs only the response `id` and the flatten-mode `sessionId`. Chromium writes the
 * `id` first in a response and appends the `sessionId` as the last key of every message of a
 * flat session (`{"id":5,"result":{...},"sessionId":"AB12"}`, `{"method":"X","params":{...},
 * "sessionId":"AB12"}`), so both are read from the first and last bytes. A message of any
 * other shape is parsed whole instead.
 */
export interface Route {
  /** A response's id; undefined for an event. */
  id?: number;
  /** An event's method, when the head shows it. */
  method?: string;
  sessionId?: string;
  /** Offset of `,"sessionId":"..."` at the tail, when the fast path found it there. */
  sessionAt?: number;
}

const HEAD_BYTES = 96;
const TAIL_BYTES = 128;
const RESPONSE_HEAD = /^\{"id":(\d{1,15}),"(?:result|error)":/;
const EVENT_HEAD = /^\{"method":"([A-Za-z]{1,64}\.[A-Za-z]{1,128})","params":/;
// A raw `"` cannot occur inside a JSON string, so `"sessionId":"` here is a real key, and the
// closing `"}` makes it the last member of the outermost object.
const SESSION_TAIL = /,"sessionId":"([0-9A-Za-z._-]{1,128})"\}$/;

export class PipeMessage {
  private whole?: Buffer;
  private parsed?: any;
  readonly route: Route;

  constructor(
    private readonly chunks: Buffer[],
    readonly length: number,
  ) {
    this.route = this.peek() ?? this.fromJson();
  }

  /** The bytes of [start, end), copied only when they span chunks. */
  slice(start: number, end: number): Buffer {
    if (this.whole) return this.whole.subarray(start, end);
    let at = 0;
    for (const c of this.chunks) {
      if (start >= at && end <= at + c.length) return c.subarray(start - at, end - at);
      at += c.length;
      if (at > start) break;
    }
    const out = Buffer.allocUnsafe(end - start);
    this.copyInto(out, 0, start, end);
    return out;
  }

  /** The whole message as one buffer (a copy when it came in several chunks). */
  bytes(): Buffer {
    this.whole ??= this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.length);
    return this.whole;
  }

  /** The parsed message; null when it is not JSON (Chromium never writes that, but a pipe read must not throw). */
  json(): any {
    if (this.parsed === undefined) {
      try {
        this.parsed = JSON.parse(this.bytes().toString('utf8'));
      } catch {
        this.parsed = null;
      }
    }
    return this.parsed;
  }

  /**
   * The message for a client: the response id swapped for the client's own, and the
   * `sessionId` dropped when it is the client's own browser-level session. One copy at most.
   */
  rewrite(opts: { id?: number; dropSession?: boolean }): Buffer {
    const r = this.route;
    const swapId = opts.id !== undefined && r.id !== undefined;
    const drop = !!opts.dropSession && r.sessionId !== undefined;
    if (!swapId && !drop) return this.bytes();
    if (r.sessionAt === undefined) {
      // Not the shape the fast path knows: rebuild from the parsed object.
      const o = { ...this.json() };
      if (swapId) o.id = opts.id;
      if (drop) delete o.sessionId;
      return Buffer.from(JSON.stringify(o));
    }
    // `{"id":OLD` -> `{"id":NEW`, and `,"sessionId":"..."}` -> `}`.
    const prefix = swapId ? Buffer.from(`{"id":${opts.id}`) : Buffer.alloc(0);
    const start = swapId ? `{"id":${r.id}`.length : 0;
    const end = drop ? r.sessionAt : this.length;
    const out = Buffer.allocUnsafe(prefix.length + (end - start) + (drop ? 1 : 0));
    prefix.copy(out, 0);
    this.copyInto(out, prefix.length, start, end);
    if (drop) out[out.length - 1] = 0x7d; // }
    return out;
  }

  private head(): string {
    return this.slice(0, Math.min(HEAD_BYTES, this.length)).toString('latin1');
  }

  private copyInto(out: Buffer, outAt: number, start: number, end: number): void {
    if (this.whole) return void this.whole.copy(out, outAt, start, end);
    let at = 0;
    for (const c of this.chunks) {
      const cEnd = at + c.length;
      if (cEnd > start && at < end) {
        const from = Math.max(start, at) - at;
        const to = Math.min(end, cEnd) - at;
        c.copy(out, outAt, from, to);
        outAt += to - from;
      }
      at = cEnd;
      if (at >= end) break;
    }
  }

  private peek(): Route | null {
    const head = this.head();
    const tail = this.slice(Math.max(0, this.length - TAIL_BYTES), this.length).toString('latin1');
    const t = SESSION_TAIL.exec(tail);
    // Without a session at the tail the message is for the root session, whose one client
    // (the daemon) parses everything anyway: let fromJson() read it.
    if (!t) return null;
    const sessionAt = this.length - tail.length + t.index;
    const resp = RESPONSE_HEAD.exec(head);
    if (resp) return { id: Number(resp[1]), sessionId: t[1], sessionAt };
    const ev = EVENT_HEAD.exec(head);
    if (ev) return { method: ev[1], sessionId: t[1], sessionAt };
    return null;
  }

  private fromJson(): Route {
    const o = this.json();
    if (!o || typeof o !== 'object') return {};
    return {
      id: Number.isSafeInteger(o.id) ? o.id : undefined,
      method: typeof o.method === 'string' ? o.method : undefined,
      sessionId: typeof o.sessionId === 'string' ? o.sessionId : undefined,
    };
  }
}

/**
 * Splits the pipe's byte stream at the NUL after each message without joining the chunks,
 * and caps a message's size so a runaway writer cannot exhaust memory.
 */
export class NulSplitter {
  private parts: Buffer[] = [];
  private size = 0;
  private overflowed = false;
  /** The first bytes of a message over the cap, so its id can still be answered. */
  private overflowHead = '';

  constructor(
    private readonly maxBytes: number,
    private readonly onMessage: (m: PipeMessage) => void,
    private readonly onOversize: (head: string) => void,
  ) {}

  push(chunk: Buffer): void {
    let from = 0;
    for (;;) {
      const nul = chunk.indexOf(0, from);
      if (nul === -1) {
        this.add(chunk.subarray(from));
        return;
      }
      this.add(chunk.subarray(from, nul));
      const parts = this.parts;
      const size = this.size;
      const skip = this.overflowed;
      this.parts = [];
      this.size = 0;
      this.overflowed = false;
      if (skip) this.onOversize(this.overflowHead);
      else if (size > 0) this.onMessage(new PipeMessage(parts, size));
      from = nul + 1;
    }
  }

  private add(b: Buffer): void {
    if (b.length === 0) return;
    this.size += b.length;
    if (this.overflowed) return;
    if (this.size > this.maxBytes) {
      this.overflowed = true;
      this.overflowHead = (this.parts[0] ?? b).subarray(0, HEAD_BYTES).toString('latin1');
      this.parts = [];
      return;
    }
    this.parts.push(b);
  }
}
