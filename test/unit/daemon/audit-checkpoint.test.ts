import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, type Db } from '../../../src/audit/database.js';
import { AuditLog } from '../../../src/audit/log.js';
import { AuditCheckpoints, CHECKPOINT_MSG, checkpointFromLogLine, checkpointProblem, parseCheckpoint } from '../../../src/audit/checkpoint.js';
import { createLogger } from '../../../src/util/logger.js';

const H = (c: string) => c.repeat(64);

describe('checkpoint text', () => {
  it('parses ID:HASH and nothing else', () => {
    expect(parseCheckpoint(`12:${H('a')}`)).toEqual({ id: 12, hash: H('a') });
    expect(parseCheckpoint(` 0:${H('0')}\n`)).toEqual({ id: 0, hash: H('0') });
    for (const bad of ['12', `12:${H('A')}`, `x:${H('a')}`, `-1:${H('a')}`, `12:${H('a')}0`, `12:${'a'.repeat(63)}`, '']) expect(parseCheckpoint(bad)).toBeNull();
  });

  it('finds checkpoint lines in JSON logs, with or without a prefix', () => {
    const line = JSON.stringify({ ts: 'x', level: 'info', msg: CHECKPOINT_MSG, component: 'audit', audit_id: 7, audit_hash: H('b'), reason: 'stop' });
    expect(checkpointFromLogLine(line)).toEqual({ id: 7, hash: H('b') });
    expect(checkpointFromLogLine(`Nov 30 06:00:00 host handoff[123]: ${line}`)).toEqual({ id: 7, hash: H('b') });
    expect(checkpointFromLogLine(JSON.stringify({ msg: 'stopping', audit_id: 7, audit_hash: H('b') }))).toBeNull();
    expect(checkpointFromLogLine(JSON.stringify({ msg: CHECKPOINT_MSG, audit_id: '7', audit_hash: H('b') }))).toBeNull();
    expect(checkpointFromLogLine(`{"msg":"${CHECKPOINT_MSG}", broken`)).toBeNull();
    expect(checkpointFromLogLine('plain text audit checkpoint')).toBeNull();
  });
});

describe('checkpointProblem', () => {
  function filled(n: number): { db: Db; log: AuditLog } {
    const db = openDatabase(':memory:');
    const log = new AuditLog(db);
    for (let i = 0; i < n; i++) log.append({ type: 'auth_failed', source_ip: '10.0.0.1', detail: { i } });
    return { db, log };
  }

  it('a checkpoint the chain reaches, the empty checkpoint, and one past the end', () => {
    const { log } = filled(5);
    const head = log.head();
    expect(head.id).toBe(5);
    expect(checkpointProblem(log, head)).toBeNull();
    expect(checkpointProblem(log, { id: 3, hash: log.hashAt(3)! })).toBeNull();
    expect(checkpointProblem(log, { id: 0, hash: H('0') })).toBeNull();
    expect(checkpointProblem(log, { id: 6, hash: H('c') })).toMatch(/^row 6 is missing: the chain ends at row 5/);
    expect(checkpointProblem(log, { id: 9, hash: H('c') })).toMatch(/^rows 6 to 9 are missing/);
    expect(checkpointProblem(log, { id: 3, hash: H('c') })).toMatch(/^row 3 has hash [0-9a-f]{64} but checkpoint 3:c+ was seen \(the chain was rewritten\)/);
  });

  it('rows deleted from the end: the shorter chain no longer reaches the old head', () => {
    const { db, log } = filled(5);
    const head = log.head();
    db.exec('DROP TRIGGER audit_no_delete');
    db.exec('DELETE FROM audit WHERE id > 3');
    const reopened = new AuditLog(db);
    expect(reopened.head().id).toBe(3);
    expect(checkpointProblem(reopened, head)).toBe(`rows 4 to 5 are missing: the chain ends at row 3 but checkpoint 5:${head.hash} was seen (rows deleted from the end)`);
  });
});

describe('AuditCheckpoints', () => {
  let dir: string;
  let file: string;
  let lines: Record<string, any>[];
  const logger = () => createLogger('info', {}, (l) => lines.push(JSON.parse(l)));
  const checkpointLines = () => lines.filter((l) => l.msg === CHECKPOINT_MSG);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'handoff-checkpoint-'));
    file = join(dir, 'audit.head');
    lines = [];
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('logs and saves the head at start, every N rows and at stop; the file is private', () => {
    const db = openDatabase(join(dir, 'handoff.db'));
    const log = new AuditLog(db);
    const cps = new AuditCheckpoints(log, file, logger(), { everyRows: 3 });
    expect(cps.problem).toBeNull();
    cps.start();
    for (let i = 0; i < 7; i++) log.append({ type: 'auth_failed', detail: { i } });
    cps.close();
    cps.close();
    expect(checkpointLines().map((l) => [l.reason, l.audit_id])).toEqual([
      ['start', 0],
      ['rows', 3],
      ['rows', 6],
      ['stop', 7],
    ]);
    expect(checkpointLines().at(-1)!.audit_hash).toBe(log.head().hash);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ audit_id: 7, audit_hash: log.head().hash });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    db.close();
  });

  it('every M ms, when rows were added', async () => {
    const log = new AuditLog(openDatabase(':memory:'));
    const cps = new AuditCheckpoints(log, file, logger(), { everyMs: 20 });
    cps.start();
    log.append({ type: 'auth_failed' });
    for (let i = 0; i < 100 && !checkpointLines().some((l) => l.reason === 'interval'); i++) await new Promise((r) => setTimeout(r, 20));
    cps.close();
    const reasons = checkpointLines().map((l) => l.reason);
    expect(reasons.filter((r) => r === 'interval')).toHaveLength(1); // nothing new afterwards, nothing logged
    expect(reasons.at(-1)).toBe('stop');
  });

  it('a start that finds the chain shorter than the saved head says so, keeps saying so, until the file is removed', () => {
    const path = join(dir, 'handoff.db');
    let db = openDatabase(path);
    let log = new AuditLog(db);
    let cps = new AuditCheckpoints(log, file, logger());
    cps.start();
    for (let i = 0; i < 5; i++) log.append({ type: 'auth_failed', detail: { i } });
    cps.close();
    db.exec('DROP TRIGGER audit_no_delete');
    db.exec('DELETE FROM audit WHERE id >= 4');
    db.close();

    lines = [];
    db = openDatabase(path);
    log = new AuditLog(db);
    cps = new AuditCheckpoints(log, file, logger());
    expect(cps.problem).toMatch(/^rows 4 to 5 are missing/);
    const error = lines.find((l) => l.level === 'error')!;
    expect(error.msg).toMatch(/^AUDIT CHAIN TRUNCATED: .*rows 4 to 5 are missing/);
    expect(error).toMatchObject({ checkpoint_id: 5, audit_id: 3 });
    cps.start();
    cps.close();
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ audit_id: 3, problem: expect.stringMatching(/rows 4 to 5/) });

    // The next start still reports it, though the chain reaches the new head.
    lines = [];
    cps = new AuditCheckpoints(log, file, logger());
    expect(cps.problem).toMatch(/rows 4 to 5/);
    expect(lines.find((l) => l.level === 'error')!.msg).toMatch(/not yet acknowledged/);

    rmSync(file);
    lines = [];
    cps = new AuditCheckpoints(log, file, logger());
    expect(cps.problem).toBeNull();
    expect(lines.find((l) => l.level === 'warn')!.msg).toMatch(/audit verify --from-log/);
    db.close();
  });

  it('an unreadable head file is a warning, not a crash', () => {
    writeFileSync(file, 'garbage');
    const cps = new AuditCheckpoints(new AuditLog(openDatabase(':memory:')), file, logger());
    expect(cps.problem).toBeNull();
    expect(lines.find((l) => l.level === 'warn')!.msg).toMatch(/unreadable/);
  });
});
