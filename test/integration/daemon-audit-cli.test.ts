import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import WebSocket from 'ws';
import { BIN, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, cdpCall, closed, tryWs } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';

/** API.md 8 (audit rows, the hash chain, `audit verify`), the CLI, and --max-sessions. */
let d: RunningDaemon;
const leaks = new LeakTracker();

beforeAll(async () => {
  d = await startDaemon({ args: ['--max-sessions', '1'] });
});

afterAll(async () => {
  await d?.cleanup();
  expect(leaks.leftovers()).toEqual([]);
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `handoff` binary; never throws on a non-zero exit. */
function handoff(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

/** API.md 8, independently: sha256 hex of prev_hash + JSON of the other fields, keys sorted. */
function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return Object.fromEntries(Object.keys(o).sort().map((k) => [k, sortKeys(o[k])]));
  }
  return v;
}
function expectedHash(row: Record<string, unknown>): string {
  const { prev_hash, hash: _hash, ...fields } = row;
  return createHash('sha256').update(String(prev_hash) + JSON.stringify(sortKeys(fields))).digest('hex');
}

describe('sessions, --max-sessions and the CLI', () => {
  let agent: WebSocket;

  it('--max-sessions 1: a second session is 503 too_many_sessions', async () => {
    const o = await tryWs(`${d.wsUrl}/?session=audited&auto_close=false`);
    expect(o.kind).toBe('open');
    agent = (o as { ws: WebSocket }).ws;
    await cdpCall(agent, 1, 'Browser.getVersion');
    leaks.note(d.stateDir);

    const second = await tryWs(`${d.wsUrl}/?session=second`);
    expect(second).toMatchObject({ kind: 'refused', status: 503, body: { error: { code: 'too_many_sessions' } } });
    const post = await api(d.url, '/devtools/browser', { method: 'POST' });
    expect(post.status).toBe(503);
    expect(post.body.error.code).toBe('too_many_sessions');
    expect((await api(d.url, '/session/second')).status).toBe(404);
  });

  it('`handoff sessions --url URL` lists the live session; `handoff sessions stop ID` stops it', async () => {
    agent.close();
    await api(d.url, '/session/audited/wait?attachment=none&timeout_ms=10000');

    const list = await handoff(['sessions', '--url', d.url]);
    expect(list.code).toBe(0);
    const line = list.stdout.split('\n').find((l) => l.startsWith('audited'));
    expect(line).toBeDefined();
    expect(line).toMatch(/\bready\b/);
    expect(line).toMatch(/\bnone\b/);
    expect(line).toMatch(/1280x720/);

    const stop = await handoff(['sessions', 'stop', 'audited', '--url', d.url]);
    expect(stop.code).toBe(0);
    expect(stop.stdout).toContain('stopped audited');
    expect((await api(d.url, '/session/audited')).body.state).toBe('stopped');

    const again = await handoff(['sessions', 'stop', 'no-such-session', '--url', d.url]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('session_not_found');

    // The limit counts live sessions only: the slot is free again.
    const next = await tryWs(`${d.wsUrl}/?session=after-stop`);
    expect(next.kind).toBe('open');
    const ws = (next as { ws: WebSocket }).ws;
    await cdpCall(ws, 1, 'Browser.getVersion');
    leaks.note(d.stateDir);
    const done = closed(ws);
    ws.close();
    await done;
    expect((await api(d.url, '/session/after-stop/wait?state=stopped&timeout_ms=20000')).status).toBe(200);
  });

  it('`handoff --help` lists the commands', async () => {
    const r = await handoff(['--help']);
    expect(r.code).toBe(0);
    for (const cmd of ['serve', 'sessions', 'sessions stop', 'audit verify', 'audit tail', 'doctor']) expect(r.stdout).toContain(`handoff ${cmd}`);
    for (const flag of ['--host', '--port', '--vnc-port', '--state-dir', '--api-key', '--max-sessions']) expect(r.stdout).toContain(flag);
  });

  it('`handoff serve --host 0.0.0.0` without an API key refuses to start and names --api-key', async () => {
    const env = { ...process.env };
    delete env.HANDOFF_API_KEY;
    delete env.HANDOFF_CONFIG;
    const r = await handoff(['serve', '--host', '0.0.0.0', '--port', '0', '--vnc-port', '0', '--state-dir', join(d.stateDir, 'never')], env);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('--api-key');
    expect(r.stdout).not.toContain('listening');
  });

  it('`handoff doctor` passes on this machine', async () => {
    const r = await handoff(['doctor', '--port', String(await freePort()), '--vnc-port', String(await freePort())]);
    expect(r.stdout).toMatch(/chromium/);
    expect(r.stdout).toMatch(/Xvfb/);
    expect(r.stdout).toMatch(/ffmpeg/);
    expect(r.stdout).not.toMatch(/FAIL/);
    expect(r.code).toBe(0);
  });
});

describe('audit', () => {
  it('GET /audit?session_id= lists the session\'s lifecycle with attach/detach details', async () => {
    const { status, body } = await api(d.url, '/audit?session_id=audited');
    expect(status).toBe(200);
    const events = body.events as Record<string, any>[];
    expect(events.map((e) => e.type)).toEqual(['session_created', 'cloud_browser_agent_attach', 'cloud_browser_agent_detach', 'session_stopped']);
    const runId = events[0]!.run_id;
    expect(typeof runId).toBe('string');
    for (const e of events) {
      expect(Object.keys(e).sort()).toEqual(['actor', 'detail', 'hash', 'id', 'prev_hash', 'run_id', 'session_id', 'source_ip', 'transport', 'ts', 'type']);
      expect(e.session_id).toBe('audited');
      expect(e.run_id).toBe(runId);
      expect(new Date(e.ts).toISOString()).toBe(e.ts);
    }
    expect(events[1]).toMatchObject({ transport: 'cdp', source_ip: '127.0.0.1', actor: 'agent' });
    expect(events[2]).toMatchObject({ transport: 'cdp', source_ip: '127.0.0.1', actor: 'agent' });
    expect(typeof events[2]!.detail.duration_ms).toBe('number');
    expect(events[2]!.detail.duration_ms).toBeGreaterThanOrEqual(0);
  });

  it('every row\'s hash recomputes from the spec and chains from 64 zeros', async () => {
    const events = (await api(d.url, '/audit?limit=10000')).body.events as Record<string, any>[];
    expect(events.length).toBeGreaterThan(6);
    expect(events[0]!.id).toBe(1);
    expect(events[0]!.prev_hash).toBe('0'.repeat(64));
    events.forEach((e, i) => {
      expect(e.hash).toMatch(/^[0-9a-f]{64}$/);
      expect({ id: e.id, hash: e.hash }).toEqual({ id: e.id, hash: expectedHash(e) });
      if (i > 0) expect(e.prev_hash).toBe(events[i - 1]!.hash);
    });
  });

  it('`handoff audit verify` passes, and after a row is edited in the database it exits 1 naming the row', async () => {
    const stoppedRow = (await api(d.url, '/audit?session_id=audited&type=session_stopped')).body.events[0];
    expect(await d.stop('SIGTERM')).toBe(0);

    const ok = await handoff(['audit', 'verify', '--state-dir', d.stateDir]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/OK/);

    const db = new Database(join(d.stateDir, 'handoff.db'));
    try {
      // The append-only trigger stops a casual edit; an attacker drops it first.
      expect(() => db.prepare("UPDATE audit SET detail = '{}' WHERE id = ?").run(stoppedRow.id)).toThrow(/append-only/);
      db.exec('DROP TRIGGER audit_no_update');
      db.prepare(`UPDATE audit SET detail = '{"reason":"nothing happened"}' WHERE id = ?`).run(stoppedRow.id);
    } finally {
      db.close();
    }
    const broken = await handoff(['audit', 'verify', '--state-dir', d.stateDir]);
    expect(broken.code).toBe(1);
    expect(broken.stdout).toContain(`row ${stoppedRow.id}`);
  });
});
