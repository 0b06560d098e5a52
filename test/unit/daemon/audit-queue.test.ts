import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, type Db } from '../../../src/audit/database.js';
import { AuditLog, verifyChain, type AuditEvent } from '../../../src/audit/log.js';
import { AuditCheckpoints } from '../../../src/audit/checkpoint.js';
import { createLogger } from '../../../src/util/logger.js';

/** A second connection holding the write lock, as another process would (BEGIN IMMEDIATE). */
function lockWriter(path: string): { release(): void } {
  const other = new Database(path);
  other.exec('BEGIN IMMEDIATE');
  return {
    release() {
      other.exec('COMMIT');
      other.close();
    },
  };
}

const until = async (pred: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('AuditLog fault policy', () => {
  let dir: string;
  let path: string;
  let db: Db;
  let lines: string[];
  const logger = () => createLogger('debug', {}, (l) => lines.push(l));

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'handoff-audit-queue-'));
    path = join(dir, 'handoff.db');
    db = openDatabase(path, { busyTimeoutMs: 50 });
    lines = [];
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('never throws while the database is locked, queues in order, and drains when the lock goes', async () => {
    const log = new AuditLog(db, { logger: logger(), retryMinMs: 10, retryMaxMs: 40 });
    const seen: AuditEvent[] = [];
    log.subscribe((e) => seen.push(e));
    log.append({ type: 'session_created', session_id: 'a' });
    expect(log.writable).toBe(true);

    const lock = lockWriter(path);
    const before = Date.now();
    expect(log.append({ type: 'auth_failed', transport: 'vnc', detail: { n: 1 } })).toBeNull();
    const tsQueued = new Date().toISOString();
    expect(log.writable).toBe(false);
    expect(log.degraded).toMatch(/SQLITE_BUSY.*1 rows queued/);
    // While degraded, new rows join the queue without waiting for the lock.
    for (let n = 2; n <= 5; n++) expect(log.append({ type: 'auth_failed', transport: 'vnc', detail: { n } })).toBeNull();
    expect(log.stats()).toMatchObject({ appends: 1, queued: 5 });
    expect(log.head().id).toBe(1); // checkpoints see only rows really written
    await new Promise((r) => setTimeout(r, 100)); // a few retries fail
    expect(log.stats().failures).toBeGreaterThan(1);
    expect(log.writable).toBe(false);

    lock.release();
    await until(() => log.writable);
    expect(log.stats()).toMatchObject({ appends: 6, queued: 0, dropped: 0 });
    const rows = [...log.iterate()];
    expect(verifyChain(rows)).toEqual({ ok: true, rows: 6 });
    expect(rows.slice(1).map((r) => r.detail.n)).toEqual([1, 2, 3, 4, 5]);
    // The queued row keeps the time its event happened, not the time it was written.
    expect(Date.parse(rows[1]!.ts)).toBeGreaterThanOrEqual(before - 1);
    expect(rows[1]!.ts <= tsQueued).toBe(true);
    expect(seen.map((e) => e.id)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(lines.some((l) => l.includes('AUDIT UNAVAILABLE'))).toBe(true);
    expect(lines.some((l) => l.includes('audit writable again'))).toBe(true);
    // The connection's busy timeout is back to normal after recovery.
    expect(db.pragma('busy_timeout', { simple: true })).toBe(50);
    log.close();
  });

  it('drains a long queue one batch per turn, in order, and stays degraded until it is empty', async () => {
    const log = new AuditLog(db, { logger: logger(), retryMinMs: 10, retryMaxMs: 20 });
    const lock = lockWriter(path);
    for (let n = 1; n <= 1234; n++) log.append({ type: 'auth_failed', detail: { n } });
    lock.release();
    // Looked at on every turn of the event loop (setImmediate runs between two timers).
    const seen = new Set<number>();
    const end = Date.now() + 5000;
    while (!log.writable && Date.now() < end) {
      const { queued } = log.stats();
      seen.add(queued);
      if (queued > 0) expect(log.writable).toBe(false);
      await new Promise((r) => setImmediate(r));
    }
    expect(log.writable).toBe(true);
    // 1234 rows: 734 and 234 were left between batches.
    expect([...seen].filter((q) => q > 0 && q < 1234).sort()).toEqual([234, 734]);
    const rows = [...log.iterate()];
    expect(verifyChain(rows)).toEqual({ ok: true, rows: 1234 });
    expect(rows.map((r) => r.detail.n)).toEqual(Array.from({ length: 1234 }, (_, i) => i + 1));
    log.close();
  });

  it('bounds the queue: a row past it is refused, counted and logged in full, never thrown', () => {
    const log = new AuditLog(db, { logger: logger(), maxQueue: 3, retryMinMs: 10_000 });
    const lock = lockWriter(path);
    try {
      for (let n = 1; n <= 5; n++) expect(() => log.append({ type: 'auth_failed', detail: { n } })).not.toThrow();
      expect(log.stats()).toMatchObject({ queued: 3, dropped: 2, appends: 0 });
      const dropped = lines.filter((l) => l.includes('AUDIT ROW DROPPED')).map((l) => JSON.parse(l));
      expect(dropped.map((d) => d.audit_row.detail.n)).toEqual([4, 5]);
    } finally {
      lock.release();
    }
    expect(log.flush()).toBe(true);
    expect(verifyChain(log.iterate())).toEqual({ ok: true, rows: 3 });
    log.close();
  });

  it('logs rows it still cannot write at close, and checkpoints cover only written rows', () => {
    const log = new AuditLog(db, { logger: logger(), retryMinMs: 10_000 });
    const cps = new AuditCheckpoints(log, join(dir, 'audit.head'), logger());
    cps.start();
    log.append({ type: 'session_created', session_id: 'a' });
    const lock = lockWriter(path);
    try {
      log.append({ type: 'session_stopped', session_id: 'a', detail: { reason: 'x' } });
      expect(log.flush()).toBe(false);
      expect(cps.checkpoint('stop').id).toBe(1);
      log.close();
    } finally {
      lock.release();
    }
    expect(lines.some((l) => l.includes('AUDIT ROWS NOT WRITTEN'))).toBe(true);
    const row = lines.map((l) => JSON.parse(l)).find((o) => o.msg === 'audit row not written');
    expect(row.audit_row).toMatchObject({ type: 'session_stopped', session_id: 'a' });
    cps.close();
  });
});

describe('AuditLog with a detail it cannot hash', () => {
  it('records the row with a note instead of throwing or blocking the queue', () => {
    const log = new AuditLog(openDatabase(':memory:'));
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(log.append({ type: 'auth_failed', detail: { n: 10n } as unknown as Record<string, unknown> })?.detail).toHaveProperty('unserializable_detail');
    expect(log.append({ type: 'auth_failed', detail: cyclic })?.detail).toHaveProperty('unserializable_detail');
    expect(log.writable).toBe(true);
    expect(verifyChain(log.iterate())).toEqual({ ok: true, rows: 2 });
  });
});
