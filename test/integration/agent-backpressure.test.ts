import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import WebSocket from 'ws';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, cdpCall, waitFor } from '../helpers/client.js';

// Security review L3: an agent that sends large commands and never reads the answers must not
// make the daemon buffer them. The daemon stops reading the agent while Chromium's command
// pipe is backed up, and stops reading the pipe while too much waits for the agent, so the
// backlog stays in the agent's own socket.
let d: RunningDaemon;

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

beforeAll(async () => {
  d = await startDaemon();
});
afterAll(async () => {
  await d?.cleanup();
});

describe('a greedy agent that never reads', () => {
  it('300 one-megabyte commands do not pile up in the daemon; the session and daemon go on', { timeout: 240_000 }, async () => {
    expect((await api(d.url, '/devtools/browser?session=greedy', { method: 'POST' })).status).toBe(200);
    const ws = new WebSocket(`${d.wsUrl}/devtools/browser/greedy`, { perMessageDeflate: false });
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    const before = rssMb(d.proc.pid!);
    (ws as any)._socket.pause(); // never read an answer
    const big = 'x'.repeat(1 << 20);
    for (let i = 0; i < 300; i++) ws.send(JSON.stringify({ id: i + 1, method: 'Runtime.evaluate', params: { expression: `"${big}".length` } }));
    let peak = before;
    for (let t = 0; t < 20; t++) {
      await new Promise((r) => setTimeout(r, 500));
      peak = Math.max(peak, rssMb(d.proc.pid!));
    }
    // Before the fix the daemon held the whole backlog (about +700 MB); now it holds at most
    // its high-water marks.
    expect(peak - before).toBeLessThan(250);
    ws.terminate();
    await waitFor('the agent detached', async () => (await api(d.url, '/session/greedy')).body.attachment === 'none');
    const again = new WebSocket(`${d.wsUrl}/devtools/browser/greedy`, { perMessageDeflate: false });
    await new Promise((r, j) => again.once('open', r).once('error', j));
    const v = await cdpCall(again, 1, 'Browser.getVersion');
    expect(v.product).toMatch(/Chrome/);
    again.close();
  });
});
