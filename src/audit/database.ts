import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type Db = Database.Database;

/**
 * Schema migrations, applied in order and recorded in PRAGMA user_version. Append only:
 * a shipped migration is never edited.
 */
const MIGRATIONS: string[] = [
  `CREATE TABLE audit (
     id INTEGER PRIMARY KEY,
     ts TEXT NOT NULL,
     type TEXT NOT NULL,
     session_id TEXT,
     run_id TEXT,
     transport TEXT,
     source_ip TEXT,
     actor TEXT,
     detail TEXT NOT NULL,
     prev_hash TEXT NOT NULL,
     hash TEXT NOT NULL
   );
   CREATE INDEX audit_session ON audit(session_id, id);
   CREATE INDEX audit_type ON audit(type, id);
   -- Append only: the chain is the proof, these triggers are the first line of defence.
   CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;
   CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END;

   -- Every process group and temp dir the daemon starts, so a restarted daemon can reap
   -- what a killed one left behind.
   CREATE TABLE owned (
     id INTEGER PRIMARY KEY,
     kind TEXT NOT NULL,
     pid INTEGER,
     path TEXT,
     session_id TEXT,
     run_id TEXT
   );

   -- Last known state of each session id, for GET /session/ID after a stop and for restarts.
   CREATE TABLE sessions (
     session_id TEXT PRIMARY KEY,
     run_id TEXT NOT NULL,
     state TEXT NOT NULL,
     data TEXT NOT NULL,
     updated_at TEXT NOT NULL
   );`,
];

/**
 * Opens (and migrates) the database. `busyTimeoutMs` is how long a statement waits for
 * another process's lock; writes are synchronous, so the daemon keeps it short (its audit
 * queues a row that cannot be written, README "Fault policy").
 */
export function openDatabase(path: string, { busyTimeoutMs = 5000 }: { busyTimeoutMs?: number } = {}): Db {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const db = new Database(path);
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    migrate(db);
  } catch (e) {
    db.close();
    throw e;
  }
  return db;
}

function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let v = current; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[v]!);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
