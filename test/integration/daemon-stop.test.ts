/**
 * Issue 10 item 6 (daemon stop): sessions are torn down side by side with short, bounded waits
 * (src/sessions/registry.ts close, src/sessions/real-parts.ts). Outcomes only (the time is a
 * bench figure): the daemon exits 0, every child it started is gone, and each session has its
 * `session_stopped` row with reason `daemon stopped`.
 */
import { afterAll, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';

let d: RunningDaemon | undefined;
const leaks = new LeakTracker();

afterAll(async () => {
  await d?.cleanup();
});

it('a daemon stop with sessions (one still starting) reaps every child and writes every session_stopped row', async () => {
  d = await startDaemon();
  const ids = ['stop-a', 'stop-b', 'stop-c'];
  for (const id of ids.slice(0, 2)) expect((await api(d.url, `/devtools/browser?session=${id}`, { method: 'POST' })).status).toBe(200);
  await waitFor('two ready sessions', async () => {
    const list = (await api(d!.url, '/sessions')).body.sessions as { state: string }[];
    return list.filter((s) => s.state === 'ready').length === 2;
  }, 120_000);
  // The third is stopped while its parts are still on their way.
  expect((await api(d.url, `/devtools/browser?session=${ids[2]}`, { method: 'POST' })).status).toBe(200);
  for (const id of ids) leaks.note(d.stateDir, id);
  expect(await d.stop()).toBe(0);
  expect(leaks.leftovers()).toEqual([]);
  const db = new Database(join(d.stateDir, 'handoff.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare("SELECT session_id, detail FROM audit WHERE type = 'session_stopped'").all() as { session_id: string; detail: string }[];
    expect(rows.map((r) => r.session_id).sort()).toEqual(ids);
    for (const r of rows) expect(JSON.parse(r.detail).reason).toBe('daemon stopped');
  } finally {
    db.close();
  }
}, 180_000);
