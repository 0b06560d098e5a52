import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type WebSocket from 'ws';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { alive, api, tryWs, waitFor } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';

/**
 * L4: live viewer sockets have the agent sockets' keepalive (--agent-keepalive, here 2 s). A
 * viewer whose process is stopped (no FIN, no close frame, no pong) is dropped: it gives back
 * its place, and the handoff its control link started ends.
 */
let d: RunningDaemon;
let agent: WebSocket | undefined;
const children: ChildProcess[] = [];
const leaks = new LeakTracker();

/** A screencast viewer in its own process: prints `served` on the hello, then stops itself. */
const STOPPING_VIEWER = `
const WebSocket = require('ws');
const ws = new WebSocket(process.argv[1], { perMessageDeflate: false });
ws.on('message', (data, isBinary) => {
  if (isBinary || JSON.parse(String(data)).type !== 'hello') return;
  process.stdout.write('served\\n', () => process.kill(process.pid, 'SIGSTOP'));
});
ws.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

beforeAll(async () => {
  // The handoff its link started ends 1 s after the viewer is dropped (README "Handing over to a human").
  d = await startDaemon({ args: ['--agent-keepalive', '2', '--handoff-grace', '1'] });
});

afterAll(async () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  }
  agent?.terminate();
  await d?.cleanup();
  expect(leaks.leftovers()).toEqual([]);
});

const info = async (id: string) => (await api(d.url, `/session/${id}`)).body;

describe('live viewer keepalive (L4)', () => {
  it('a stopped viewer process on a control link is dropped by the keepalive: its place frees and the handoff its link started ends', async () => {
    const id = 'ka';
    // An agent holds the session, so opening the control link starts a handoff (API.md 3.4).
    const o = await tryWs(`${d.wsUrl}/?session=${id}&auto_close=false`);
    if (o.kind !== 'open') throw new Error(JSON.stringify(o));
    agent = o.ws;
    leaks.note(d.stateDir, id);
    const link = (await api(d.url, `/session/${id}/live`)).body.url as string;

    const child = spawn(process.execPath, ['-e', STOPPING_VIEWER, `${link.replace(/^http/, 'ws')}/screencast`], { cwd: process.cwd(), stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    child.stdout!.on('data', (b) => (out += b));
    child.stderr!.on('data', (b) => (out += b));
    await waitFor('the viewer served', () => out.includes('served'));
    const during = await info(id);
    expect(during.viewers.screencast).toBe(1);
    expect(during.handoff).not.toBeNull();
    await waitFor('the process stopped', () => child.pid !== undefined && stateOf(child.pid) === 'T');

    await waitFor('the keepalive to drop the viewer', async () => (await info(id)).viewers.screencast === 0, 30_000);
    await waitFor('the link-started handoff ended', async () => (await info(id)).handoff === null || null, 10_000);
    const completed = (await api(d.url, `/audit?session_id=${id}&type=handoff_completed`)).body.events;
    expect(completed.map((e: { detail: { outcome: string } }) => e.detail.outcome)).toEqual(['done']);
    // The process is still there, stopped: it was the keepalive, not a FIN.
    expect(alive(child.pid!)).toBe(true);
    expect(stateOf(child.pid!)).toBe('T');

    child.kill('SIGKILL');
    agent.close();
    await api(d.url, `/session/${id}/stop`, { method: 'POST' });
  }, 60_000);
});

/** The process state letter from /proc (T: stopped). */
function stateOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
}
