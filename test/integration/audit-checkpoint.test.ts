import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { BIN, startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';

/**
 * Issue 8.11 / API.md 8: rows cut off the end of the audit chain leave a valid shorter chain;
 * the logged checkpoints (`verify --checkpoint`, `--from-log`) and the next start catch it.
 */
const json = { 'content-type': 'application/json' };
const leaks = new LeakTracker();

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function handoff(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** The daemon's JSON log lines with msg "audit checkpoint". */
function checkpointLines(logs: string): { audit_id: number; audit_hash: string; reason: string; component: string }[] {
  return logs
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l))
    .filter((l) => l.msg === 'audit checkpoint');
}

describe('audit checkpoints catch rows deleted from the end of the chain', () => {
  let stateDir: string;
  let first: RunningDaemon;
  let second: RunningDaemon | undefined;
  let logFile: string;
  let head: { id: number; hash: string };

  beforeAll(async () => {
    stateDir = mkdtempSync(join(tmpdir(), 'handoff-checkpoint-state-'));
    logFile = join(stateDir, 'daemon.log');
  });

  afterAll(async () => {
    await first?.cleanup();
    await second?.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
    expect(leaks.leftovers()).toEqual([]);
  });

  it('a daemon logs its chain head at start and at stop, and /health says the chain is whole', async () => {
    first = await startDaemon({ stateDir });
    expect(checkpointLines(first.logs())[0]).toMatchObject({ audit_id: 0, audit_hash: '0'.repeat(64), reason: 'start', component: 'audit' });
    expect((await api(first.url, '/health')).body).toMatchObject({ ok: true, audit_truncated: false });

    // Real rows: a session created over REST, a live link, then the session stopped.
    expect((await api(first.url, '/devtools/browser?session=cp', { method: 'POST', headers: json, body: '{}' })).status).toBe(200);
    leaks.note(stateDir);
    expect((await api(first.url, '/session/cp/live')).status).toBe(200);
    expect((await api(first.url, '/session/cp/stop', { method: 'POST', headers: json, body: '{}' })).status).toBe(200);
    const rows = (await api(first.url, '/audit?limit=1000')).body.events as { id: number; hash: string; type: string }[];
    expect(rows.map((r) => r.type)).toEqual(['session_created', 'live_url_issued', 'session_stopped']);

    expect(await first.stop()).toBe(0);
    const stop = checkpointLines(first.logs()).at(-1)!;
    expect(stop).toMatchObject({ reason: 'stop', audit_id: rows.at(-1)!.id, audit_hash: rows.at(-1)!.hash });
    head = { id: stop.audit_id, hash: stop.audit_hash };
    writeFileSync(logFile, first.logs());

    // Before any tampering every check passes.
    const ok = await handoff(['audit', 'verify', '--state-dir', stateDir, '--checkpoint', `${head.id}:${head.hash}`, '--from-log', logFile]);
    expect(ok.stdout).toContain(`checkpoint ${head.id}:${head.hash} reached`);
    expect(ok.code).toBe(0);
  });

  it('after an attacker deletes the last rows, plain `verify` still passes but `--checkpoint` and `--from-log` fail naming the missing rows', async () => {
    const db = new Database(join(stateDir, 'handoff.db'));
    try {
      expect(() => db.prepare('DELETE FROM audit WHERE id = ?').run(head.id)).toThrow(/append-only/);
      db.exec('DROP TRIGGER audit_no_delete');
      db.prepare('DELETE FROM audit WHERE id > ?').run(head.id - 2);
    } finally {
      db.close();
    }

    // The weakness: what is left is a valid chain.
    const plain = await handoff(['audit', 'verify', '--state-dir', stateDir]);
    expect(plain.stdout).toContain(`audit chain OK: ${head.id - 2} rows verified`);
    expect(plain.code).toBe(0);

    const missing = `rows ${head.id - 1} to ${head.id} are missing: the chain ends at row ${head.id - 2}`;
    const byId = await handoff(['audit', 'verify', '--state-dir', stateDir, '--checkpoint', `${head.id}:${head.hash}`]);
    expect(byId.stdout).toContain(`checkpoint ${head.id} NOT REACHED: ${missing}`);
    expect(byId.code).toBe(1);

    const fromLog = await handoff(['audit', 'verify', '--state-dir', stateDir, '--from-log', logFile]);
    expect(fromLog.stdout).toContain(`last checkpoint in ${logFile}: ${head.id}:${head.hash}`);
    expect(fromLog.stdout).toContain(missing);
    expect(fromLog.code).toBe(1);

    // A checkpoint inside what is left is still reached; a wrong hash for it is not.
    const rowOne = new Database(join(stateDir, 'handoff.db'), { readonly: true });
    const hash1 = (rowOne.prepare('SELECT hash FROM audit WHERE id = 1').get() as { hash: string }).hash;
    rowOne.close();
    expect((await handoff(['audit', 'verify', '--state-dir', stateDir, '--checkpoint', `1:${hash1}`])).code).toBe(0);
    const wrong = await handoff(['audit', 'verify', '--state-dir', stateDir, '--checkpoint', `1:${'e'.repeat(64)}`]);
    expect(wrong.stdout).toContain('the chain was rewritten');
    expect(wrong.code).toBe(1);
  });

  it('bad arguments are usage errors that name the flag', async () => {
    const bad = await handoff(['audit', 'verify', '--state-dir', stateDir, '--checkpoint', 'nonsense']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--checkpoint takes ID:HASH');
    const nolog = await handoff(['audit', 'verify', '--state-dir', stateDir, '--from-log', join(stateDir, 'handoff.pid-none')]);
    expect(nolog.code).toBe(2);
    expect(nolog.stderr).toContain('--from-log');
    const empty = join(stateDir, 'empty.log');
    writeFileSync(empty, '{"msg":"stopping"}\nnot json\n');
    const none = await handoff(['audit', 'verify', '--state-dir', stateDir, '--from-log', empty]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('no "audit checkpoint" line');
    const unknown = await handoff(['audit', 'verify', '--state-dir', stateDir, '--nope']);
    expect(unknown.code).toBe(2);
  });

  it('the next daemon start logs the truncation as an error and /health reports audit_truncated', async () => {
    second = await startDaemon({ stateDir });
    const error = second
      .logs()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l))
      .find((l) => l.level === 'error' && /AUDIT CHAIN TRUNCATED/.test(l.msg));
    expect(error).toBeDefined();
    expect(error.msg).toContain(`rows ${head.id - 1} to ${head.id} are missing`);
    expect(error).toMatchObject({ checkpoint_id: head.id, checkpoint_hash: head.hash, audit_id: head.id - 2 });
    expect((await api(second.url, '/health')).body).toMatchObject({ ok: true, audit_truncated: true });
    // The start checkpoint records the head as it is now.
    expect(checkpointLines(second.logs())[0]).toMatchObject({ reason: 'start', audit_id: head.id - 2 });
    expect(await second.stop()).toBe(0);
  });
});
