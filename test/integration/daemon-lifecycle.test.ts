import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import WebSocket from 'ws';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { alive, api, cdpCall, closed, ownedRows, pidsMatching, tryWs, waitFor, type OwnedRow } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';

/**
 * API.md 1 and 3.5: a crashed browser ends its session (sockets close with 4000, audited, the
 * display reaped); SIGTERM leaves nothing behind; a SIGKILLed daemon's orphans are reaped by
 * the next one on the same state dir.
 */
const daemons: RunningDaemon[] = [];
const stateDirs: string[] = [];
const leaks = new LeakTracker();

afterAll(async () => {
  for (const d of daemons) await d.cleanup();
  for (const dir of stateDirs) rmSync(dir, { recursive: true, force: true });
  expect(leaks.leftovers()).toEqual([]);
});

async function connectAgent(d: RunningDaemon, id: string): Promise<WebSocket> {
  const o = await tryWs(`${d.wsUrl}/?session=${id}&auto_close=false`);
  if (o.kind !== 'open') throw new Error(`connect failed: ${JSON.stringify(o)}`);
  // Proves the browser is up and answering through the proxy.
  await cdpCall(o.ws, 1, 'Browser.getVersion');
  return o.ws;
}

function byKind(rows: OwnedRow[], kind: OwnedRow['kind']): OwnedRow {
  const r = rows.find((x) => x.kind === kind);
  if (!r) throw new Error(`no ${kind} in the owned table: ${JSON.stringify(rows)}`);
  return r;
}

/** Every process or temp dir of these owned rows that is still there. */
function remains(rows: OwnedRow[]): string[] {
  const out: string[] = [];
  for (const r of rows) {
    if (r.pid && alive(r.pid)) out.push(`${r.kind} pid ${r.pid}`);
    if (r.path && existsSync(r.path)) out.push(`dir ${r.path}`);
    if (r.path) for (const p of pidsMatching(r.path)) out.push(`pid ${p} using ${r.path}`);
  }
  return out;
}

describe('a crashed browser', () => {
  it('kill -9 of Chromium: state crashed, the agent socket closes with 4000, session_crashed is audited, the Xvfb is gone', async () => {
    const d = await startDaemon();
    daemons.push(d);
    const ws = await connectAgent(d, 'doomed');
    const closing = closed(ws);
    const rows = leaks.note(d.stateDir, 'doomed');
    const chromium = byKind(rows, 'chromium');
    const xvfb = byKind(rows, 'xvfb');
    expect(alive(chromium.pid!)).toBe(true);
    expect(alive(xvfb.pid!)).toBe(true);

    process.kill(chromium.pid!, 'SIGKILL');

    const { code, reason } = await closing;
    expect(code).toBe(4000);
    expect(reason).toMatch(/crash/);
    const info = await waitFor('state crashed', async () => {
      const b = (await api(d.url, '/session/doomed')).body;
      return b.state === 'crashed' ? b : null;
    });
    expect(info).toMatchObject({ state: 'crashed', attachment: 'none' });
    // The row is written once the parts are torn down, a moment after the state flips.
    const events = await waitFor('the session_crashed row', async () => {
      const e = (await api(d.url, '/audit?session_id=doomed&type=session_crashed')).body.events;
      return e.length ? e : null;
    });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ session_id: 'doomed', run_id: info.run_id });
    await waitFor('the session processes and dirs to be gone', () => remains(rows).length === 0, 10_000);
    expect(remains(rows)).toEqual([]);

    // The id is usable again: a new browser (new run_id) under the same id.
    const again = await connectAgent(d, 'doomed');
    const fresh = (await api(d.url, '/session/doomed')).body;
    expect(fresh.state).toBe('ready');
    expect(fresh.run_id).not.toBe(info.run_id);
    leaks.note(d.stateDir, 'doomed');
    again.close();
  });
});

describe('stopping the daemon', () => {
  it('SIGTERM: exit code 0, connected agents get 4000, no Chromium, Xvfb or temp dir is left', async () => {
    const d = daemons[0]!;
    const ws = await connectAgent(d, 'at-sigterm');
    const closing = closed(ws);
    const rows = [...leaks.note(d.stateDir, 'at-sigterm'), ...leaks.note(d.stateDir, 'doomed')];
    expect(rows.filter((r) => r.kind === 'chromium')).toHaveLength(2);
    for (const r of rows) {
      if (r.kind === 'xvfb') expect(dirname(r.path!)).toBe('/dev/shm');
      if (r.kind === 'xvfb') expect(basename(r.path!)).toMatch(/^handoff-x-/);
      // A throwaway profile is in the browser sandbox's own tmpfs: no dir of the host to leave.
      if (r.kind === 'chromium') expect(r.path).toBeNull();
    }
    expect(remains(rows).length).toBeGreaterThan(0);

    expect(await d.stop('SIGTERM')).toBe(0);
    expect((await closing).code).toBe(4000);
    expect(remains(rows)).toEqual([]);
    expect(existsSync(join(d.stateDir, 'handoff.pid'))).toBe(false);
  });

  it('SIGKILL with a live session, then a new daemon on the same state dir reaps the orphans and reports the session stopped', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'handoff-test-state-'));
    stateDirs.push(stateDir);
    const first = await startDaemon({ stateDir });
    daemons.push(first);
    const ws = await connectAgent(first, 'orphaned');
    const rows = leaks.note(stateDir, 'orphaned');
    expect(rows.map((r) => r.kind).sort()).toEqual(['chromium', 'xvfb']);

    await first.stop('SIGKILL');
    ws.terminate();
    // The browser and display die with the daemon (parent-death signal); their temp dirs,
    // and any child that outlived them, are left for the next daemon.
    await waitFor('the browser and display to die with the daemon', () => !alive(byKind(rows, 'chromium').pid!) && !alive(byKind(rows, 'xvfb').pid!), 10_000);
    expect(byKind(rows, 'xvfb').path && existsSync(byKind(rows, 'xvfb').path!)).toBe(true);

    const second = await startDaemon({ stateDir });
    daemons.push(second);
    await waitFor('the orphans to be reaped', () => remains(rows).length === 0, 10_000);
    expect(remains(rows)).toEqual([]);
    expect(ownedRows(stateDir)).toEqual([]);

    const info = await api(second.url, '/session/orphaned');
    expect(info.status).toBe(200);
    expect(info.body).toMatchObject({ session_id: 'orphaned', state: 'stopped', attachment: 'none', attached_by: '' });
    const stops = (await api(second.url, '/audit?session_id=orphaned&type=session_stopped')).body.events;
    expect(stops).toHaveLength(1);
    expect(await second.stop('SIGTERM')).toBe(0);
  });
});
