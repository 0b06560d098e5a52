import { existsSync } from 'node:fs';
import { alive, ownedRows, pidsMatching, processTable, type OwnedRow } from './client.js';

/**
 * Remembers the processes and temp dirs a daemon recorded as its own, so a test can check,
 * after cleanup, that none of them is left (other tests' processes are not ours to judge).
 */
export class LeakTracker {
  private readonly seen = new Map<number | string, OwnedRow>();
  /** Every process under a noted one at the time (Chromium's zygotes, renderers, crashpad), by pid: its start time. */
  private readonly descendants = new Map<number, { kind: string; started: string }>();

  /** Reads the daemon's `owned` table now (call while sessions are live). */
  note(stateDir: string, sessionId?: string): OwnedRow[] {
    const rows = ownedRows(stateDir, sessionId);
    for (const r of rows) this.seen.set(`${r.kind}:${r.pid}:${r.path}`, r);
    const tree = processTable();
    for (const r of rows) {
      const todo = r.pid ? [r.pid] : [];
      while (todo.length) {
        const pid = todo.pop()!;
        for (const [child, p] of tree) if (p.ppid === pid && !this.descendants.has(child)) (this.descendants.set(child, { kind: r.kind, started: p.started }), todo.push(child));
      }
    }
    return rows;
  }

  /** Every process or dir noted that still exists, as readable strings (empty: no leak). */
  leftovers(): string[] {
    const out: string[] = [];
    for (const r of this.seen.values()) {
      if (r.pid && alive(r.pid)) out.push(`${r.kind} pid ${r.pid} still runs`);
      if (r.path && existsSync(r.path)) out.push(`${r.kind} dir ${r.path} still exists`);
      // Chromium's helpers (zygote, renderers, GPU) carry the profile dir in their command line.
      if (r.path) for (const pid of pidsMatching(r.path)) out.push(`pid ${pid} still runs with ${r.path}`);
    }
    const now = processTable();
    for (const [pid, d] of this.descendants) if (now.get(pid)?.started === d.started && alive(pid)) out.push(`pid ${pid} under a ${d.kind} still runs`);
    return out;
  }
}
