import { createHash } from 'node:crypto';
import type { Db } from './database.js';
import type { Logger } from '../util/logger.js';

export const AUDIT_TYPES = [
  'session_created',
  'session_stopped',
  'session_crashed',
  'cloud_browser_agent_attach',
  'cloud_browser_agent_detach',
  'auth_failed',
  'network_denied',
  'handoff_requested',
  'handoff_completed',
  'download_completed',
  'download_cancelled',
  'live_url_issued',
  'live_url_revoked',
  'profile_attached',
  'profile_released',
  'file_uploaded',
] as const;
export type AuditType = (typeof AUDIT_TYPES)[number];

export interface AuditInput {
  type: AuditType;
  session_id?: string | null;
  run_id?: string | null;
  transport?: string | null;
  source_ip?: string | null;
  actor?: string | null;
  detail?: Record<string, unknown>;
}

export interface AuditEvent {
  id: number;
  ts: string;
  type: AuditType;
  session_id: string | null;
  run_id: string | null;
  transport: string | null;
  source_ip: string | null;
  actor: string | null;
  detail: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

export const GENESIS_HASH = '0'.repeat(64);

/** A point of the chain: a row id and its hash (id 0 is the empty chain). */
export interface AuditHead {
  id: number;
  hash: string;
}

/** JSON with object keys sorted at every depth: the canonical form the chain hashes. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    return `{${Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/** API.md 8: sha256 hex of prev_hash followed by the JSON of the other fields, keys sorted. */
export function rowHash(row: Omit<AuditEvent, 'hash'>): string {
  const { prev_hash, ...fields } = row;
  return createHash('sha256').update(prev_hash + canonicalJson(fields)).digest('hex');
}

interface DbRow extends Omit<AuditEvent, 'detail'> {
  detail: string;
}

const fromDb = (r: DbRow): AuditEvent => ({ ...r, detail: JSON.parse(r.detail) as Record<string, unknown> });

export interface AuditQuery {
  session_id?: string;
  type?: string;
  /** ISO time or row id: events strictly after it. */
  since?: string;
  limit?: number;
}

/** A row waiting to be written: its content and the time its event happened. */
type PendingRow = Omit<AuditEvent, 'id' | 'prev_hash' | 'hash'>;

export interface AuditStats {
  /** Rows written to the database. */
  appends: number;
  /** Write attempts that failed (a first append or a retry). */
  failures: number;
  /** Rows waiting in the retry queue. */
  queued: number;
  /** Rows refused because the queue was full (each one logged in full at error level). */
  dropped: number;
}

export interface AuditLogOptions {
  logger?: Logger;
  /** Rows kept in memory while the database cannot be written (default 10,000). */
  maxQueue?: number;
  /** Retry delays: the first, doubled after each failure up to the last (default 100 ms to 5 s). */
  retryMinMs?: number;
  retryMaxMs?: number;
}

/** Rows written in one transaction when the queue drains, so a long queue blocks only briefly. */
const DRAIN_BATCH = 500;

/**
 * The append-only, hash-chained audit trail (API.md 8).
 *
 * Fault policy (README "Fault policy"): `append()` never throws. A row that cannot be written
 * (SQLITE_BUSY, a full disk, a read-only file) waits in a bounded in-memory queue and is
 * retried in order with backoff; its id and prev_hash are computed when it is really written,
 * its `ts` is when the event happened, so the chain stays contiguous. While rows wait,
 * `writable` is false and `degraded` says why: the daemon refuses new sessions and attaches.
 */
export class AuditLog {
  // The head of the rows really written (checkpoints and listeners see only those).
  private lastHash: string;
  private lastId: number;
  private readonly insert;
  private readonly tail;
  private readonly writeRows;
  private listeners = new Set<(e: AuditEvent) => void>();
  private readonly queue: PendingRow[] = [];
  private failure: string | null = null;
  private retryTimer?: NodeJS.Timeout;
  private retryMs: number;
  private readonly busyTimeoutMs: number;
  private closed = false;
  /** Queued rows written since the audit became unwritable (for the recovery log line). */
  private drained = 0;
  private readonly counts = { appends: 0, failures: 0, dropped: 0 };
  private readonly logger?: Logger;
  private readonly maxQueue: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;

  constructor(
    private readonly db: Db,
    opts: AuditLogOptions = {},
  ) {
    this.logger = opts.logger;
    this.maxQueue = opts.maxQueue ?? 10_000;
    this.retryMinMs = opts.retryMinMs ?? 100;
    this.retryMaxMs = opts.retryMaxMs ?? 5000;
    this.retryMs = this.retryMinMs;
    this.busyTimeoutMs = db.pragma('busy_timeout', { simple: true }) as number;
    const last = db.prepare('SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1').get() as { id: number; hash: string } | undefined;
    this.lastHash = last?.hash ?? GENESIS_HASH;
    this.lastId = last?.id ?? 0;
    this.tail = db.prepare('SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1');
    this.insert = db.prepare(
      `INSERT INTO audit (id, ts, type, session_id, run_id, transport, source_ip, actor, detail, prev_hash, hash)
       VALUES (@id, @ts, @type, @session_id, @run_id, @transport, @source_ip, @actor, @detail, @prev_hash, @hash)`,
    );
    // The chain continues from the tail read inside the write transaction: the ids and hashes
    // are those of the rows really in the file, whatever an earlier failed attempt did.
    this.writeRows = db.transaction((rows: PendingRow[]): AuditEvent[] => {
      const t = this.tail.get() as { id: number; hash: string } | undefined;
      let id = t?.id ?? 0;
      let prev = t?.hash ?? GENESIS_HASH;
      const written: AuditEvent[] = [];
      for (const r of rows) {
        const row: Omit<AuditEvent, 'hash'> = { id: ++id, ...r, prev_hash: prev };
        const event: AuditEvent = { ...row, hash: rowHash(row) };
        this.insert.run({ ...event, detail: canonicalJson(event.detail) });
        written.push(event);
        prev = event.hash;
      }
      return written;
    });
  }

  /**
   * Records an event. Never throws: when the database cannot be written the row is queued
   * and retried in order (see the class comment). Returns the row when it was written now,
   * null when it waits in the queue (or was refused because the queue is full).
   */
  append(input: AuditInput): AuditEvent | null {
    const row: PendingRow = {
      ts: new Date().toISOString(),
      type: input.type,
      session_id: input.session_id ?? null,
      run_id: input.run_id ?? null,
      transport: input.transport ?? null,
      source_ip: input.source_ip ?? null,
      actor: input.actor ?? null,
      detail: this.serializable(input.detail ?? {}),
    };
    if (this.closed) {
      this.refuse(row, 'the audit log is closed');
      return null;
    }
    // Rows already waiting go first: a new row never overtakes them.
    if (this.queue.length === 0) {
      const written = this.tryWrite([row]);
      if (written) return written[0]!;
    }
    if (this.queue.length >= this.maxQueue) {
      this.refuse(row, `the retry queue is full (${this.maxQueue} rows)`);
      return null;
    }
    this.queue.push(row);
    this.scheduleRetry();
    return null;
  }

  /** False while rows wait to be written: no new session or attach until they are. */
  get writable(): boolean {
    return this.queue.length === 0 && this.failure === null;
  }

  /** Why the audit cannot be written (the last error and the queue), or null when it can. */
  get degraded(): string | null {
    if (this.writable) return null;
    return `${this.failure ?? 'rows waiting'} (${this.queue.length} rows queued)`;
  }

  stats(): AuditStats {
    return { ...this.counts, queued: this.queue.length };
  }

  /**
   * Tries once, now, to write every queued row (at stop, before the last checkpoint). True
   * when nothing waits any more.
   */
  flush(): boolean {
    this.drain();
    return this.queue.length === 0;
  }

  /**
   * Stops retrying; rows still queued cannot be written by this process, so each is logged
   * in full at error level (the log is then their only record). Call before the DB closes.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.queue.length) {
      this.logger?.error(`AUDIT ROWS NOT WRITTEN: ${this.queue.length} rows were still queued at stop; they follow in this log`, { reason: this.failure });
      for (const row of this.queue.splice(0)) this.logger?.error('audit row not written', { audit_row: row });
    }
  }

  /** Writes rows in one transaction; on failure records why and returns null (nothing written). */
  private tryWrite(rows: PendingRow[]): AuditEvent[] | null {
    let written: AuditEvent[];
    try {
      written = this.writeRows.immediate(rows);
    } catch (e) {
      this.counts.failures++;
      this.fail(e);
      return null;
    }
    this.counts.appends += written.length;
    const last = written[written.length - 1]!;
    this.lastId = last.id;
    this.lastHash = last.hash;
    for (const event of written) {
      for (const l of this.listeners) {
        try {
          l(event);
        } catch (e) {
          this.logger?.error('audit listener failed', { error: (e as Error).message, stack: (e as Error).stack });
        }
      }
    }
    return written;
  }

  private fail(e: unknown): void {
    const err = e as { code?: string; message?: string };
    const reason = `${err.code ?? 'error'}: ${String(err.message ?? e).slice(0, 300)}`;
    if (this.failure === null) {
      this.logger?.error('AUDIT UNAVAILABLE: an audit row cannot be written; rows are queued and retried, new sessions and attaches are refused until it can', { error: reason });
      // Retries must not stall the event loop for the whole busy timeout each time: while
      // degraded, a locked database fails at once and the next retry tries again.
      this.setBusyTimeout(0);
    }
    this.failure = reason;
  }

  private setBusyTimeout(ms: number): void {
    try {
      this.db.pragma(`busy_timeout = ${ms}`);
    } catch {
      // a pragma on a broken connection: the retries still work, only slower
    }
  }

  private scheduleRetry(delay = this.retryMs): void {
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      const wrote = this.drain(1);
      if (!this.queue.length) return;
      if (wrote) {
        // Writable again, more to write: the next batch on the next turn, so a long queue
        // never blocks the event loop for more than one batch.
        this.scheduleRetry(0);
      } else {
        this.retryMs = Math.min(this.retryMs * 2, this.retryMaxMs);
        this.scheduleRetry();
      }
    }, delay);
    // Pending rows must not keep a stopping process alive; close() logs what is left.
    this.retryTimer.unref();
  }

  /**
   * Writes the queue in order, up to `maxBatches` batches, until it is empty or a write
   * fails; true when it wrote something. An emptied queue ends the degraded state.
   */
  private drain(maxBatches = Infinity): boolean {
    if (this.closed) return false;
    let wrote = false;
    for (let n = 0; this.queue.length && n < maxBatches; n++) {
      const batch = this.queue.slice(0, DRAIN_BATCH);
      if (!this.tryWrite(batch)) return wrote;
      this.queue.splice(0, batch.length);
      this.drained += batch.length;
      wrote = true;
    }
    if (this.queue.length) return wrote;
    if (this.failure !== null || this.drained > 0) {
      this.logger?.warn('audit writable again: the queued rows are written, service resumes', { rows: this.drained, last_error: this.failure });
    }
    this.failure = null;
    this.drained = 0;
    this.retryMs = this.retryMinMs;
    this.setBusyTimeout(this.busyTimeoutMs);
    return wrote;
  }

  /**
   * A detail the chain cannot hash (a BigInt, a cycle) would block the queue behind it for
   * ever: it is replaced, here, by a note saying so.
   */
  private serializable(detail: Record<string, unknown>): Record<string, unknown> {
    try {
      canonicalJson(detail);
      return detail;
    } catch (e) {
      this.logger?.error('audit detail cannot be serialized; recorded without it', { error: (e as Error).message });
      return { unserializable_detail: String((e as Error).message).slice(0, 200) };
    }
  }

  /** The queue is full or the log closed: the row cannot be kept, so it goes to the log in full. */
  private refuse(row: PendingRow, why: string): void {
    this.counts.dropped++;
    this.logger?.error(`AUDIT ROW DROPPED: ${why}; the row is only in this log line`, { audit_row: row });
  }

  /** The chain's head: the last row's id and hash (0 and the genesis hash when empty). */
  head(): AuditHead {
    return { id: this.lastId, hash: this.lastHash };
  }

  /** The stored hash of row `id`, if that row exists. */
  hashAt(id: number): string | undefined {
    return (this.db.prepare('SELECT hash FROM audit WHERE id = ?').get(id) as { hash: string } | undefined)?.hash;
  }

  /** Live feed for the dashboard; returns an unsubscribe function. */
  subscribe(listener: (e: AuditEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  query(q: AuditQuery = {}): AuditEvent[] {
    const where: string[] = [];
    const params: Record<string, unknown> = {};
    if (q.session_id) (where.push('session_id = @session_id'), (params.session_id = q.session_id));
    if (q.type) (where.push('type = @type'), (params.type = q.type));
    if (q.since) {
      if (/^\d+$/.test(q.since)) (where.push('id > @since_id'), (params.since_id = Number(q.since)));
      else (where.push('ts > @since_ts'), (params.since_ts = q.since));
    }
    const limit = Math.min(Math.max(q.limit ?? 100, 1), 10_000);
    // The newest `limit` rows, returned oldest first.
    const rows = this.db
      .prepare(`SELECT * FROM (SELECT * FROM audit ${where.length ? 'WHERE ' + where.join(' AND ') : ''} ORDER BY id DESC LIMIT ${limit}) ORDER BY id`)
      .all(params) as DbRow[];
    return rows.map(fromDb);
  }

  *iterate(): Generator<AuditEvent> {
    for (const r of this.db.prepare('SELECT * FROM audit ORDER BY id').iterate() as Iterable<DbRow>) yield fromDb(r);
  }
}

export interface VerifyResult {
  ok: boolean;
  rows: number;
  /** The first row that breaks the chain, and why. */
  brokenAt?: { id: number; reason: string };
}

/** Walks the chain from the genesis hash; an edited, inserted or deleted row breaks it. */
export function verifyChain(events: Iterable<AuditEvent>): VerifyResult {
  let prev = GENESIS_HASH;
  let expectedId = 1;
  let rows = 0;
  for (const e of events) {
    rows++;
    if (e.id !== expectedId) return { ok: false, rows, brokenAt: { id: e.id, reason: `row ${expectedId} is missing (deleted)` } };
    if (e.prev_hash !== prev) return { ok: false, rows, brokenAt: { id: e.id, reason: 'prev_hash does not match the previous row' } };
    const { hash, ...rest } = e;
    if (rowHash(rest) !== hash) return { ok: false, rows, brokenAt: { id: e.id, reason: 'row content does not match its hash (edited)' } };
    prev = hash;
    expectedId++;
  }
  return { ok: true, rows };
}
