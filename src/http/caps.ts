import { sourceKey } from '../util/throttle.js';

/**
 * Open-connection caps (issue 8 item 9): at most `perSource` connections from one source and
 * `total` in all. A connection holds its slot until it closes (an upgraded WebSocket too).
 *
 * A source is what the credential throttle calls one (`sourceKey`: an IPv4 address, an IPv6
 * /64), so a host cannot multiply its share by using more of its own addresses. At a cap the
 * oldest connection that has not yet sent complete request headers is dropped to make room
 * (within the source at its cap, anywhere at the global cap): idle half-open sockets cannot
 * lock legitimate clients out. After them, the keep-alive connection idle longest between
 * requests is dropped (security review: 64 keep-alive clients re-sending GET /health every few
 * seconds held every slot of their source for good). Only a request in flight or an upgraded
 * socket is never dropped for this; when every slot holds one, the newcomer is refused.
 * Neither a refused nor a dropped connection is reset (the server answers it 429, see
 * HttpServer.shed): a client always learns why.
 */
export interface ConnectionCapsOptions {
  perSource: number;
  total: number;
}

export const DEFAULT_CONNECTION_CAPS: ConnectionCapsOptions = { perSource: 64, total: 1024 };

/** A connection's place under the caps. */
export interface ConnectionSlot {
  /** The connection's request (or upgrade) headers are complete: not dropped while it runs. */
  requestSeen(): void;
  /** Its response is sent: until its next request the connection is idle and may be dropped. */
  responded(): void;
  /** Gives the slot back (on close); idempotent. */
  release(): void;
}

/** Why a connection is dropped: no complete request headers yet, or keep-alive between requests. */
export type DropReason = 'half-open' | 'idle';

interface Entry {
  key: string;
  released: boolean;
  drop: (why: DropReason) => void;
}

export class ConnectionCaps {
  private readonly bySource = new Map<string, Set<Entry>>();
  // The droppable connections, oldest first (a Set keeps insertion order): those that never
  // completed request headers go before keep-alive ones waiting between requests.
  private readonly halfOpen = new Set<Entry>();
  private readonly idle = new Set<Entry>();
  private open = 0;

  constructor(private readonly caps: ConnectionCapsOptions = DEFAULT_CONNECTION_CAPS) {}

  /**
   * A slot for a connection from `address`, making room if needed by calling `drop` of a
   * droppable connection (its slot is freed at once); null when no room can be made.
   */
  admit(address: string, drop: (why: DropReason) => void): ConnectionSlot | null {
    const key = sourceKey(address);
    const mine = this.bySource.get(key);
    if (mine && mine.size >= this.caps.perSource && !this.dropOne(key)) return null;
    if (this.open >= this.caps.total && !this.dropOne(null)) return null;
    const entry: Entry = { key, released: false, drop };
    const set = this.bySource.get(key) ?? new Set<Entry>();
    this.bySource.set(key, set.add(entry));
    this.halfOpen.add(entry);
    this.open++;
    return {
      requestSeen: () => {
        this.halfOpen.delete(entry);
        this.idle.delete(entry);
      },
      responded: () => {
        if (!entry.released) this.idle.add(entry);
      },
      release: () => this.release(entry),
    };
  }

  get size(): number {
    return this.open;
  }

  /** Drops the first droppable connection (of source `key`, or any); false when there is none. */
  private dropOne(key: string | null): boolean {
    for (const among of [this.halfOpen, this.idle]) {
      for (const e of among) {
        if (key !== null && e.key !== key) continue;
        this.release(e);
        e.drop(among === this.halfOpen ? 'half-open' : 'idle');
        return true;
      }
    }
    return false;
  }

  private release(e: Entry): void {
    if (e.released) return;
    e.released = true;
    this.halfOpen.delete(e);
    this.idle.delete(e);
    const set = this.bySource.get(e.key);
    set?.delete(e);
    if (set?.size === 0) this.bySource.delete(e.key);
    this.open--;
  }
}
