import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Logger } from '../util/logger.js';
import type { AuditHead, AuditLog } from './log.js';

/**
 * Checkpoints of the audit chain's head (API.md 8). A hash chain proves every row up to its
 * end, but rows cut off the end leave a shorter chain that still verifies. So the head (last
 * id and hash) is written where the database cannot take it back: to the log (journald, or
 * wherever logs are shipped) and to a small file beside the database, and `handoff audit
 * verify --checkpoint ID:HASH` proves the chain still reaches a head seen earlier.
 */
export const CHECKPOINT_MSG = 'audit checkpoint';

/** `ID:HASH`, as printed by the checkpoint lines. */
export function parseCheckpoint(text: string): AuditHead | null {
  const m = /^(\d{1,15}):([0-9a-f]{64})$/.exec(text.trim());
  return m ? { id: Number(m[1]), hash: m[2]! } : null;
}

/**
 * The checkpoint in one log line (a JSON object, possibly after a prefix such as syslog's or
 * journalctl's), or null when the line is something else.
 */
export function checkpointFromLogLine(line: string): AuditHead | null {
  const start = line.indexOf('{');
  if (start === -1 || !line.includes(CHECKPOINT_MSG)) return null;
  try {
    const o = JSON.parse(line.slice(start)) as Record<string, unknown>;
    if (o.msg !== CHECKPOINT_MSG || typeof o.audit_id !== 'number' || typeof o.audit_hash !== 'string') return null;
    return parseCheckpoint(`${o.audit_id}:${o.audit_hash}`);
  } catch {
    return null;
  }
}

/** Null when the chain still reaches `cp`; otherwise what is missing or different, in words. */
export function checkpointProblem(log: Pick<AuditLog, 'head' | 'hashAt'>, cp: AuditHead): string | null {
  if (cp.id === 0) return null;
  const head = log.head();
  if (cp.id > head.id) {
    const missing = cp.id === head.id + 1 ? `row ${cp.id} is` : `rows ${head.id + 1} to ${cp.id} are`;
    return `${missing} missing: the chain ends at row ${head.id} but checkpoint ${cp.id}:${cp.hash} was seen (rows deleted from the end)`;
  }
  const hash = log.hashAt(cp.id);
  if (hash === undefined) return `row ${cp.id} is missing (deleted), checkpoint ${cp.id}:${cp.hash}`;
  if (hash !== cp.hash) return `row ${cp.id} has hash ${hash} but checkpoint ${cp.id}:${cp.hash} was seen (the chain was rewritten)`;
  return null;
}

interface HeadFile {
  audit_id: number;
  audit_hash: string;
  ts: string;
  /** Set once a start found the chain short of the last checkpoint; kept until the file is removed. */
  problem?: string;
}

export interface CheckpointOptions {
  everyRows?: number;
  everyMs?: number;
}

/**
 * Owns the checkpoint file (`STATE_DIR/audit.head`) and the periodic checkpoint lines: at
 * start (after checking the chain still reaches the file's head), every `everyRows` rows,
 * every `everyMs` when rows were added, and at stop.
 */
export class AuditCheckpoints {
  /** Why the chain no longer reaches a checkpoint it once had (this start or an earlier one), or null. */
  readonly problem: string | null;
  private readonly everyRows: number;
  private readonly everyMs: number;
  private rowsSince = 0;
  private timer?: NodeJS.Timeout;
  private unsubscribe?: () => void;
  private closed = false;

  constructor(
    private readonly audit: AuditLog,
    private readonly file: string,
    private readonly logger: Logger,
    opts: CheckpointOptions = {},
  ) {
    this.everyRows = opts.everyRows ?? 1000;
    this.everyMs = opts.everyMs ?? 10 * 60_000;
    this.problem = this.check();
  }

  /** Checks the saved head against the chain before anything is appended. */
  private check(): string | null {
    const head = this.audit.head();
    if (!existsSync(this.file)) {
      if (head.id > 0) this.logger.warn(`no ${this.file}: the chain's end cannot be checked this time; verify it against the logged checkpoints with \`handoff audit verify --from-log\``, { audit_id: head.id });
      return null;
    }
    let saved: HeadFile;
    try {
      saved = JSON.parse(readFileSync(this.file, 'utf8')) as HeadFile;
      if (!parseCheckpoint(`${saved.audit_id}:${saved.audit_hash}`)) throw new Error('no audit_id/audit_hash');
    } catch (e) {
      this.logger.warn(`${this.file} is unreadable; the chain's end cannot be checked this time`, { error: (e as Error).message });
      return null;
    }
    const found = checkpointProblem(this.audit, { id: saved.audit_id, hash: saved.audit_hash });
    if (found) {
      this.logger.error(`AUDIT CHAIN TRUNCATED: the audit chain no longer reaches its last checkpoint: ${found}`, {
        checkpoint_id: saved.audit_id,
        checkpoint_hash: saved.audit_hash,
        checkpoint_ts: saved.ts,
        audit_id: head.id,
        audit_hash: head.hash,
      });
      return `${found} (found at start ${new Date().toISOString()})`;
    }
    if (saved.problem) {
      this.logger.error(`AUDIT CHAIN TRUNCATED (found earlier, not yet acknowledged): ${saved.problem}; remove ${this.file} once investigated`);
      return saved.problem;
    }
    return null;
  }

  /** The start checkpoint, then one every `everyRows` rows and every `everyMs` with new rows. */
  start(): void {
    this.checkpoint('start');
    this.unsubscribe = this.audit.subscribe(() => {
      if (++this.rowsSince >= this.everyRows) this.checkpoint('rows');
    });
    this.timer = setInterval(() => this.rowsSince > 0 && this.checkpoint('interval'), this.everyMs);
    this.timer.unref();
  }

  /** Logs the head and saves it to the file; returns it. */
  checkpoint(reason: 'start' | 'rows' | 'interval' | 'stop'): AuditHead {
    const head = this.audit.head();
    this.rowsSince = 0;
    this.logger.info(CHECKPOINT_MSG, { audit_id: head.id, audit_hash: head.hash, reason });
    const saved: HeadFile = { audit_id: head.id, audit_hash: head.hash, ts: new Date().toISOString(), ...(this.problem ? { problem: this.problem } : {}) };
    try {
      // Write-then-rename: a crash mid-write never leaves half a checkpoint.
      writeFileSync(`${this.file}.tmp`, JSON.stringify(saved) + '\n', { mode: 0o600 });
      renameSync(`${this.file}.tmp`, this.file);
    } catch (e) {
      this.logger.warn(`cannot write ${this.file}`, { error: (e as Error).message });
    }
    return head;
  }

  /** The stop checkpoint; call before the database closes. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.unsubscribe?.();
    this.checkpoint('stop');
  }
}
