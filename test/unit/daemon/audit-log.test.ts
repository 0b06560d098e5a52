import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { openDatabase } from '../../../src/audit/database.js';
import { AuditLog, GENESIS_HASH, canonicalJson, rowHash, verifyChain, type AuditEvent } from '../../../src/audit/log.js';

/**
 * API.md 8, computed here without the module: sha256 hex of prev_hash followed by the JSON of
 * the row's other fields with keys sorted.
 */
function specHash(row: Record<string, unknown>): string {
  const sortKeys = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sortKeys)
      : v && typeof v === 'object'
        ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]))
        : v;
  const { prev_hash, hash: _ignored, ...fields } = row;
  return createHash('sha256').update(String(prev_hash) + JSON.stringify(sortKeys(fields))).digest('hex');
}

function filledLog(n = 5): { log: AuditLog; events: AuditEvent[] } {
  const log = new AuditLog(openDatabase(':memory:'));
  const events: AuditEvent[] = [];
  events.push(log.append({ type: 'session_created', session_id: 's1', run_id: 'r1', detail: { width: 1280, height: 720, auto_close: true } })!);
  events.push(log.append({ type: 'cloud_browser_agent_attach', session_id: 's1', run_id: 'r1', transport: 'cdp', source_ip: '127.0.0.1', actor: 'agent' })!);
  events.push(log.append({ type: 'download_completed', session_id: 's1', run_id: 'r1', detail: { sha256: 'ab', name: 'a.txt', size: 3, nested: { z: 1, a: [2, { y: 1, b: 2 }] } } })!);
  events.push(log.append({ type: 'cloud_browser_agent_detach', session_id: 's1', run_id: 'r1', transport: 'cdp', source_ip: '127.0.0.1', actor: 'agent', detail: { duration_ms: 12 } })!);
  for (let i = events.length; i < n; i++) events.push(log.append({ type: 'auth_failed', source_ip: '10.0.0.1', transport: 'http', detail: { path: `/p${i}` } })!);
  return { log, events };
}

describe('canonicalJson', () => {
  it('sorts keys at every depth, keeps array order, drops undefined, writes null', () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { y: 1, x: 2 }], c: null }, u: undefined })).toBe('{"a":{"c":null,"d":[3,{"x":2,"y":1}]},"b":1}');
    expect(canonicalJson('é"\n')).toBe(JSON.stringify('é"\n'));
    expect(canonicalJson(null)).toBe('null');
    expect(canonicalJson([])).toBe('[]');
    expect(canonicalJson({})).toBe('{}');
  });
});

describe('rowHash', () => {
  it('matches the spec computed independently', () => {
    const row = {
      id: 7,
      ts: '2026-01-02T03:04:05.678Z',
      type: 'session_stopped' as const,
      session_id: 'abc',
      run_id: 'run',
      transport: null,
      source_ip: null,
      actor: null,
      detail: { reason: 'idle timeout', extra: { b: 2, a: 1 } },
      prev_hash: 'f'.repeat(64),
    };
    const fields = '{"actor":null,"detail":{"extra":{"a":1,"b":2},"reason":"idle timeout"},"id":7,"run_id":"run","session_id":"abc","source_ip":null,"transport":null,"ts":"2026-01-02T03:04:05.678Z","type":"session_stopped"}';
    const expected = createHash('sha256').update('f'.repeat(64) + fields).digest('hex');
    expect(rowHash(row)).toBe(expected);
    expect(specHash(row)).toBe(expected);
  });
});

describe('AuditLog', () => {
  it('chains every appended row from 64 zeros with the spec hash', () => {
    const { log, events } = filledLog();
    expect(GENESIS_HASH).toBe('0'.repeat(64));
    const stored = [...log.iterate()];
    expect(stored).toEqual(events);
    expect(stored[0]!.prev_hash).toBe('0'.repeat(64));
    stored.forEach((e, i) => {
      expect(e.id).toBe(i + 1);
      expect(e.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(e.hash).toBe(specHash(e as unknown as Record<string, unknown>));
      if (i > 0) expect(e.prev_hash).toBe(stored[i - 1]!.hash);
    });
    expect(verifyChain(stored)).toEqual({ ok: true, rows: stored.length });
  });

  it('continues the chain after a reopen', () => {
    const db = openDatabase(':memory:');
    const a = new AuditLog(db).append({ type: 'session_created', session_id: 'x' })!;
    const b = new AuditLog(db).append({ type: 'session_stopped', session_id: 'x' })!;
    expect(b.prev_hash).toBe(a.hash);
    expect(verifyChain(new AuditLog(db).iterate()).ok).toBe(true);
  });

  it('is append only in the database (triggers)', () => {
    const db = openDatabase(':memory:');
    new AuditLog(db).append({ type: 'session_created', session_id: 'x' });
    expect(() => db.prepare("UPDATE audit SET type = 'auth_failed'").run()).toThrow(/append-only/);
    expect(() => db.prepare('DELETE FROM audit').run()).toThrow(/append-only/);
  });

  it('queries by session, type, since and limit, oldest first', () => {
    const { log } = filledLog(8);
    expect(log.query({ session_id: 's1' }).map((e) => e.id)).toEqual([1, 2, 3, 4]);
    expect(log.query({ type: 'auth_failed' }).map((e) => e.id)).toEqual([5, 6, 7, 8]);
    expect(log.query({ since: '6' }).map((e) => e.id)).toEqual([7, 8]);
    expect(log.query({ limit: 2 }).map((e) => e.id)).toEqual([7, 8]);
  });
});

describe('verifyChain', () => {
  const copy = (events: AuditEvent[]) => events.map((e) => ({ ...e, detail: { ...e.detail } }));

  it('detects an edited row and names it', () => {
    const { events } = filledLog();
    const edited = copy(events);
    edited[2]!.detail = { ...edited[2]!.detail, size: 4 };
    expect(verifyChain(edited)).toMatchObject({ ok: false, brokenAt: { id: 3 } });
    const retyped = copy(events);
    retyped[1]!.source_ip = '10.9.9.9';
    expect(verifyChain(retyped)).toMatchObject({ ok: false, brokenAt: { id: 2 } });
  });

  it('detects an edit whose hash was recomputed (the next row no longer links)', () => {
    const { events } = filledLog();
    const forged = copy(events);
    forged[1]!.actor = 'human';
    const { hash: _h, ...rest } = forged[1]!;
    forged[1]!.hash = rowHash(rest);
    expect(verifyChain(forged)).toMatchObject({ ok: false, brokenAt: { id: 3 } });
  });

  it('detects a deleted row', () => {
    const { events } = filledLog();
    expect(verifyChain(events.filter((e) => e.id !== 3))).toMatchObject({ ok: false, brokenAt: { id: 4 } });
    // Deleting the first row breaks the chain at the new first row.
    expect(verifyChain(events.slice(1)).ok).toBe(false);
    // Truncating the tail cannot be seen from the rows alone; the chain up to there holds.
    expect(verifyChain(events.slice(0, 3)).ok).toBe(true);
  });

  it('detects reordered rows', () => {
    const { events } = filledLog();
    const swapped = [events[0]!, events[2]!, events[1]!, events[3]!, events[4]!];
    expect(verifyChain(swapped).ok).toBe(false);
    // Even with ids renumbered to look consecutive.
    const renumbered = swapped.map((e, i) => ({ ...e, id: i + 1 }));
    expect(verifyChain(renumbered)).toMatchObject({ ok: false, brokenAt: { id: 2 } });
  });
});
