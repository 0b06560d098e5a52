import { sourceKey } from '../util/throttle.js';

/**
 * Open-connection caps (issue 8 item 9): at most `perSource` connections from one source and
 * `total` in all. A connection holds its slot until it closes (an upgraded WebSocket too).
 *
 * A source is what the credential throttle calls one (`sourceKey`: an IPv4 address, an IPv6
 * /64), so a host cannot multiply its share by using more of its own addresses. At a cap the
 * oldest connection that has not yet sent complete request headers is dropped to make room
 * (within the source at its cap, anywhere at the global cap): idle half-open sockets cannot
 * lock legitimate clients out. A connection that got a request or an upgrade through is never
 * dropped for this; when every slot holds one, the newcomer is refused.
 */
export interface ConnectionCapsOptions {
  perSource: number;
  total: number;
}

export const DEFAULT_CONNECTION_CAPS: ConnectionCapsOptions = { perSource: 64, total: 1024 };

/** A connection's place under the caps. */
export interface ConnectionSlot {
  /** The connection's request (or upgrade) headers are complete: never dropped from now on. */
  requestSeen(): void;
  /** Gives the slot back (on close); idempotent. */
  release(): void;
}

interface Entry {
  key: string;
  pending: boolean;
  released: boolean;
  drop: () => void;
}

export class ConnectionCaps {
  private readonly bySource = new Map<string, Set<Entry>>();
  /** Connections without complete request headers, oldest first (Set keeps insertion order). */
  private readonly pending = new Set<Entry>();
  private open = 0;

  constructor(private readonly caps: ConnectionCapsOptions = DEFAULT_CONNECTION_CAPS) {}

  /**
   * A slot for a connection from `address`, making room if needed by calling `drop` of an
   * older header-incomplete connection (its slot is freed at once); null when no room can be made.
   */
  admit(address: string, drop: () => void): ConnectionSlot | null {
    const key = sourceKey(address);
    const mine = this.bySource.get(key);
    if (mine && mine.size >= this.caps.perSource && !this.dropOldest(mine)) return null;
    if (this.open >= this.caps.total && !this.dropOldest(this.pending)) return null;
    const entry: Entry = { key, pending: true, released: false, drop };
    const set = this.bySource.get(key) ?? new Set<Entry>();
    this.bySource.set(key, set.add(entry));
    this.pending.add(entry);
    this.open++;
    return {
      requestSeen: () => {
        entry.pending = false;
        this.pending.delete(entry);
      },
      release: () => this.release(entry),
    };
  }

  get size(): number {
    return this.open;
  }

  /** Drops the oldest header-incomplete connection among `among`; false when there is none. */
  private dropOldest(among: Set<Entry>): boolean {
    for (const e of among) {
      if (!e.pending) continue;
      this.release(e);
      e.drop();
      return true;
    }
    return false;
  }

  private release(e: Entry): void {
    if (e.released) return;
    e.released = true;
    this.pending.delete(e);
    const set = this.bySource.get(e.key);
    set?.delete(e);
    if (set?.size === 0) this.bySource.delete(e.key);
    this.open--;
  }
}
