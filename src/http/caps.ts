/**
 * Open-connection caps (issue 8 item 9): at most `perSource` connections from one address and
 * `total` in all. A connection holds its slot until it closes (an upgraded WebSocket too).
 */
export interface ConnectionCapsOptions {
  perSource: number;
  total: number;
}

export const DEFAULT_CONNECTION_CAPS: ConnectionCapsOptions = { perSource: 64, total: 1024 };

export class ConnectionCaps {
  private readonly bySource = new Map<string, number>();
  private open = 0;

  constructor(private readonly caps: ConnectionCapsOptions = DEFAULT_CONNECTION_CAPS) {}

  /** Takes a slot for `source`; false (and nothing taken) when a cap is reached. */
  admit(source: string): boolean {
    const n = this.bySource.get(source) ?? 0;
    if (n >= this.caps.perSource || this.open >= this.caps.total) return false;
    this.bySource.set(source, n + 1);
    this.open++;
    return true;
  }

  /** Gives back a slot taken by `admit`. */
  release(source: string): void {
    const n = this.bySource.get(source);
    if (!n) return;
    if (n === 1) this.bySource.delete(source);
    else this.bySource.set(source, n - 1);
    this.open--;
  }

  get size(): number {
    return this.open;
  }
}
