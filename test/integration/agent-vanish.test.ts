import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { alive, api, cdpCall, tryWs, waitFor } from '../helpers/client.js';
import { PUPPETEER_AGENT } from '../helpers/agents.js';
import { LeakTracker } from '../helpers/leaks.js';

/**
 * Issue 15.1: an agent that disappears without a close frame is detached (audit row,
 * auto_close applied) and the next connect succeeds: a SIGKILLed Puppeteer process (the
 * kernel sends the FIN) and a bare FIN, on a daemon whose keepalive (600 s) cannot be what
 * noticed them; and a process that is stopped and sends nothing at all, found by the
 * keepalive of a daemon run with --agent-keepalive 2.
 */
const ROOT = resolve(import.meta.dirname, '../..');
let d: RunningDaemon;
let quick: RunningDaemon;
const leaks = new LeakTracker();
const children: ChildProcess[] = [];

beforeAll(async () => {
  [d, quick] = await Promise.all([startDaemon({ args: ['--agent-keepalive', '600'] }), startDaemon({ args: ['--agent-keepalive', '2'] })]);
});

afterEach(() => {
  for (const c of children.splice(0)) {
    if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGCONT');
      c.kill('SIGKILL');
    }
  }
});

afterAll(async () => {
  await d?.cleanup();
  await quick?.cleanup();
  expect(leaks.leftovers()).toEqual([]);
});

/** A node process that connects as an agent and then idles; resolves once it is attached. */
async function agentProcess(script: string, endpoint: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, endpoint], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (b) => (out += b));
  child.stderr!.on('data', (b) => (out += b));
  await waitFor(`the agent process to connect (output: ${out})`, () => out.includes('connected') || child.exitCode !== null);
  if (!out.includes('connected')) throw new Error(`agent process failed: ${out}`);
  return child;
}


// A raw ws client that answers nothing on its own once the process is stopped.
const WS_AGENT = `
import WebSocket from 'ws';
const ws = new WebSocket(process.argv[1], { perMessageDeflate: false });
ws.on('open', () => ws.send(JSON.stringify({ id: 1, method: 'Browser.getVersion' })));
ws.on('message', () => console.log('connected'));
setInterval(() => {}, 1000);`;

async function info(id: string, on = d) {
  return (await api(on.url, `/session/${id}`)).body;
}

async function detachRows(id: string, on = d): Promise<number> {
  return (await api(on.url, `/audit?session_id=${id}&type=cloud_browser_agent_detach`)).body.events.length;
}

async function connectsAgain(id: string, on = d): Promise<void> {
  const o = await tryWs(`${on.wsUrl}/?session=${id}&auto_close=false`);
  if (o.kind !== 'open') throw new Error(`reconnect failed: ${JSON.stringify(o)}`);
  expect(await cdpCall(o.ws, 1, 'Browser.getVersion')).toHaveProperty('product');
  expect((await info(id, on)).attachment).toBe('agent');
  o.ws.close();
  await waitFor('detached again', async () => (await info(id, on)).attachment === 'none');
}

describe('vanished agents are detached', () => {
  it('kill -9 of a Puppeteer process: attachment none, a detach row, and a new connect succeeds', async () => {
    const id = 'vanish-kill';
    const child = await agentProcess(PUPPETEER_AGENT, `${d.wsUrl}/?session=${id}&auto_close=false`);
    leaks.note(d.stateDir, id);
    expect(await info(id)).toMatchObject({ state: 'ready', attachment: 'agent' });
    child.kill('SIGKILL');
    await waitFor('attachment none', async () => (await info(id)).attachment === 'none');
    expect(await detachRows(id)).toBe(1);
    await connectsAgain(id);
    await api(d.url, `/session/${id}/stop`, { method: 'POST' });
  });

  it('kill -9 of a Puppeteer process on an auto_close session stops it', async () => {
    const id = 'vanish-autoclose';
    const child = await agentProcess(PUPPETEER_AGENT, `${d.wsUrl}/?session=${id}`);
    leaks.note(d.stateDir, id);
    child.kill('SIGKILL');
    const stopped = await api(d.url, `/session/${id}/wait?state=stopped&timeout_ms=20000`);
    expect(stopped.body).toMatchObject({ state: 'stopped', attachment: 'none' });
    const rows = (await api(d.url, `/audit?session_id=${id}&type=session_stopped`)).body.events;
    expect(rows.map((r: { detail: { reason: string } }) => r.detail.reason)).toEqual(['client disconnected']);
  });

  it('a FIN without a close frame (the process exits without disconnecting)', async () => {
    const id = 'vanish-fin';
    const o = await tryWs(`${d.wsUrl}/?session=${id}&auto_close=false`);
    if (o.kind !== 'open') throw new Error(JSON.stringify(o));
    o.ws.terminate();
    leaks.note(d.stateDir, id);
    await waitFor('detached', async () => (await info(id)).attachment === 'none');

    // The same over a bare socket: upgrade, one command, then only a FIN.
    const sock = connect(d.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    sock.write(
      `GET /?session=${id}&auto_close=false HTTP/1.1\r\nHost: 127.0.0.1:${d.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    let seen = '';
    sock.on('data', (b) => (seen += b.toString('latin1')));
    await waitFor('the 101', () => seen.includes('101 Switching Protocols'));
    expect((await info(id)).attachment).toBe('agent');
    sock.end();
    await waitFor('detached after the FIN', async () => (await info(id)).attachment === 'none');
    sock.destroy();
    expect(await detachRows(id)).toBe(2);
    await connectsAgain(id);
    await api(d.url, `/session/${id}/stop`, { method: 'POST' });
  });

  it('a stopped process that sends nothing (no FIN) is detached by the keepalive', async () => {
    const id = 'vanish-stop';
    const child = await agentProcess(WS_AGENT, `${quick.wsUrl}/?session=${id}&auto_close=false`);
    leaks.note(quick.stateDir, id);
    expect((await info(id, quick)).attachment).toBe('agent');
    child.kill('SIGSTOP');
    await waitFor('the keepalive to detach it', async () => (await info(id, quick)).attachment === 'none', 30_000);
    expect(await detachRows(id, quick)).toBe(1);
    // The process is still there, stopped: it was the keepalive, not a FIN.
    expect(alive(child.pid!)).toBe(true);
    await connectsAgain(id, quick);
    child.kill('SIGCONT');
    child.kill('SIGKILL');
    await api(quick.url, `/session/${id}/stop`, { method: 'POST' });
  });
});
