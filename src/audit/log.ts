import { createHash } from 'node:crypto';
import type { Db } from './database.js';

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
  'live_url_issued',
  'live_url_revoked',
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

/** The append-only, hash-chained audit trail. Appends are synchronous: one row, one fsync-free commit. */
export class AuditLog {
  // This process is the only writer (one daemon per state dir), so the tail of the chain is
  // kept here instead of being read back for every append.
  private lastHash: string;
  private lastId: number;
  private readonly insert;
  private listeners = new Set<(e: AuditEvent) => void>();

  constructor(private readonly db: Db) {
    const last = db.prepare('SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1').get() as { id: number; hash: string } | undefined;
    this.lastHash = last?.hash ?? GENESIS_HASH;
    this.lastId = last?.id ?? 0;
    this.insert = db.prepare(
      `INSERT INTO audit (id, ts, type, session_id, run_id, transport, source_ip, actor, detail, prev_hash, hash)
       VALUES (@id, @ts, @type, @session_id, @run_id, @transport, @source_ip, @actor, @detail, @prev_hash, @hash)`,
    );
  }

  append(input: AuditInput): AuditEvent {
    const row: Omit<AuditEvent, 'hash'> = {
      id: this.lastId + 1,
      ts: new Date().toISOString(),
      type: input.type,
      session_id: input.session_id ?? null,
      run_id: input.run_id ?? null,
      transport: input.transport ?? null,
      source_ip: input.source_ip ?? null,
      actor: input.actor ?? null,
      detail: input.detail ?? {},
      prev_hash: this.lastHash,
    };
    const event: AuditEvent = { ...row, hash: rowHash(row) };
    this.insert.run({ ...event, detail: canonicalJson(event.detail) });
    this.lastHash = event.hash;
    this.lastId = event.id;
    for (const l of this.listeners) l(event);
    return event;
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
