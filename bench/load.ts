/**
 * Issue 10 load figures (`npm run bench -- load`):
 * - 100 concurrent agents racing to attach to one session: exactly one wins, every loser gets
 *   409 session_attached with the JSON body (or 429 past the per-source cap of 64 open
 *   connections: all of loopback is one source), nothing hangs;
 * - 500 concurrent REST clients on /sessions and /session/ID with 20 live sessions (p99),
 *   sharing 60 keep-alive sockets (under that cap), so a sample includes the wait for one;
 * - the most idle sessions this machine holds (--max-sessions 200, until creation fails or
 *   under 3 GB of memory is left: the machine is shared), with PSS per session, REST p99 and
 *   daemon stop time. LOAD_MAX_SESSIONS lowers the cap.
 */
import { readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import { WebSocket } from 'ws';
import { startDaemon, type RunningDaemon } from '../test/helpers/daemon.js';
import { fmt, pss, stats } from './lib.js';
import type { Row } from './core.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One attach attempt: 'open' (the socket is kept), or the refusal's status and body. */
function attach(url: string): Promise<{ ws?: WebSocket; status?: number; body?: string; error?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    ws.once('error', (e) => resolve({ error: e.message }));
  });
}

/** A GET from a given local address, timed (ms). */
function get(port: number, path: string, localAddress: string, agent: http.Agent): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, localAddress, agent }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - t0) : reject(new Error(`${path}: ${res.statusCode}`))));
    });
    req.on('error', reject);
  });
}

async function createSessions(d: RunningDaemon, prefix: string, n: number, log: (s: string) => void): Promise<number> {
  let made = 0;
  for (let i = 0; i < n; i++) {
    const r = await fetch(`${d.url}/devtools/browser?session=${prefix}${i}`, { method: 'POST' });
    if (r.status !== 200) {
      log(`session ${i + 1} refused: ${r.status} ${(await r.text()).slice(0, 200)}`);
      break;
    }
    made++;
  }
  // Wait until all are ready (creation returns before the browser is up).
  for (let t = 0; t < 600; t++) {
    const list = ((await (await fetch(`${d.url}/sessions`)).json()) as { sessions: { state: string }[] }).sessions;
    if (list.filter((s) => s.state === 'ready').length >= made) break;
    await sleep(500);
  }
  return made;
}

/** Rounds of `n` concurrent attach attempts on one id: winners, and how the losers were answered. */
async function raceRounds(d: RunningDaemon, n: number, rounds: number) {
  const winners: number[] = [];
  let refused409 = 0;
  /** Answered 429 or reset: the per-source cap of 64 open connections (all of loopback is one source). */
  let capped = 0;
  let other = 0;
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    const out = await Promise.all(Array.from({ length: n }, () => attach(`${d.wsUrl}/devtools/browser/race?auto_close=false`)));
    times.push(performance.now() - t0);
    const open = out.filter((o) => o.ws);
    winners.push(open.length);
    for (const o of out) {
      if (o.ws) continue;
      let code = '';
      try {
        code = JSON.parse(o.body ?? '').error?.code;
      } catch {
        // not JSON
      }
      if (o.status === 409 && code === 'session_attached') refused409++;
      else if ((o.status === 429 && code === 'too_many_requests') || /hang up|ECONNRESET/.test(o.error ?? '')) capped++;
      else other++;
    }
    for (const o of open) o.ws!.close();
    for (let t = 0; t < 100; t++) {
      const s = (await (await fetch(`${d.url}/session/race`)).json()) as { attachment: string };
      if (s.attachment === 'none') break;
      await sleep(100);
    }
  }
  return { winners, refused409, capped, other, losers: n * rounds - winners.reduce((a, b) => a + b, 0), maxMs: Math.max(...times) };
}

async function racers(d: RunningDaemon, log: (s: string) => void): Promise<Row[]> {
  await fetch(`${d.url}/devtools/browser?session=race`, { method: 'POST' });
  const rows: Row[] = [];
  // 100 as the issue asks; 60 stays under the per-source connection cap (issue 8), which drops
  // the oldest connection whose headers are not in yet when a 65th arrives from one source.
  for (const n of [100, 60]) {
    const r = await raceRounds(d, n, 3);
    log(`${n} racers: winners per round ${r.winners.join(', ')}; losers: ${r.refused409} 409, ${r.capped} at the per-source cap, ${r.other} other`);
    rows.push(
      { figure: `${n} concurrent attach racers: winners per round (3 rounds)`, handoff: r.winners.join(' / '), reference: '', ratio: '', target: '1 each', ok: r.winners.every((w) => w === 1) },
      { figure: `${n} racers: losers answered 409 session_attached with the JSON body`, handoff: `${r.refused409} of ${r.losers}`, reference: '', ratio: '', target: 'all', ok: r.refused409 === r.losers },
      { figure: `${n} racers: losers reset or 429 at the per-source cap of 64 connections / anything else`, handoff: `${r.capped} / ${r.other}`, reference: '', ratio: '', target: 'report / 0', ok: r.other === 0 },
      { figure: `${n} racers: all answered, max of 3 rounds (ms)`, handoff: fmt(r.maxMs, 0), reference: '', ratio: '', target: 'report (no deadlock)', ok: null },
    );
  }
  return rows;
}

/** `clients` concurrent clients, each `each` GETs alternating /sessions and /session/ID. */
async function restLoad(d: RunningDaemon, ids: string[], clients: number, each: number): Promise<number[]> {
  // All of loopback is one source, capped at 64 connections (issue 8): the clients share 60
  // keep-alive sockets, so a sample includes the wait for a socket.
  const agents = [new http.Agent({ keepAlive: true, maxSockets: 60 })];
  const samples: number[] = [];
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      const local = '127.0.0.1';
      for (let i = 0; i < each; i++) {
        const path = i % 2 ? `/session/${ids[(c + i) % ids.length]}` : '/sessions';
        samples.push(await get(d.port, path, local, agents[0]!));
      }
    }),
  );
  for (const a of agents) a.destroy();
  return samples;
}

export async function benchLoad(log: (s: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  const maxIdle = Number(process.env.LOAD_MAX_SESSIONS ?? 200);
  // 1 + 2: racers, then 20 live sessions under 500 REST clients.
  let d = await startDaemon({ args: ['--max-sessions', '32'] });
  try {
    log('100 attach racers on one id, 3 rounds...');
    rows.push(...(await racers(d, log)));
    log('20 live sessions...');
    const made = await createSessions(d, 'load', 20, log);
    const ids = Array.from({ length: made }, (_, i) => `load${i}`);
    log(`500 concurrent REST clients x 20 requests on /sessions and /session/ID with ${made} sessions...`);
    await restLoad(d, ids, 50, 4); // warm-up
    const s = stats(await restLoad(d, ids, 500, 20));
    rows.push(
      { figure: `REST p50 / p99 with 500 concurrent clients, ${made} sessions (ms)`, handoff: `${fmt(s.p50, 1)} / ${fmt(s.p99, 1)}`, reference: '', ratio: '', target: 'p99 <= 20', ok: s.p99 <= 20 },
      { figure: 'REST requests in that run', handoff: String(s.n), reference: '', ratio: '', target: 'report', ok: null },
    );
  } finally {
    await d.cleanup();
  }

  // 3: idle sessions until creation fails, memory runs low, or the cap for this shared machine.
  d = await startDaemon({ args: ['--max-sessions', '200'] });
  try {
    log(`idle sessions, up to ${maxIdle} (LOAD_MAX_SESSIONS)...`);
    let made = 0;
    // LOAD_IDLE_MINUTES: a time budget for this part (on a loaded machine a session takes ~20 s to come up).
    const until = Date.now() + Number(process.env.LOAD_IDLE_MINUTES ?? 60) * 60_000;
    let stoppedBy = 'the cap';
    for (; made < maxIdle; made++) {
      if (Date.now() > until) {
        stoppedBy = 'the LOAD_IDLE_MINUTES time budget';
        log(`stopping at ${made}: ${stoppedBy}`);
        break;
      }
      const free = Number(/MemAvailable:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * 1024;
      if (free < 3 * 1024 ** 3) {
        stoppedBy = 'under 3 GB of memory available';
        log(`stopping at ${made}: ${stoppedBy}`);
        break;
      }
      if ((await createSessions(d, `idle${made}-`, 1, log)) === 0) {
        stoppedBy = 'a refused creation';
        break;
      }
      if (made % 10 === 9) log(`${made + 1} idle sessions, ${fmt(free / 1024 ** 3, 1)} GB available, load ${readFileSync('/proc/loadavg', 'utf8').split(' ')[0]}`);
    }
    await sleep(5000);
    // PSS of everything under the daemon (Xvfb, Chromium and its children), per session.
    const total = allDescendants(d.proc.pid!).reduce((n, p) => n + pss(p), 0);
    const list = ((await (await fetch(`${d.url}/sessions`)).json()) as { sessions: { session_id: string }[] }).sessions;
    const ids = list.map((x) => x.session_id);
    const s = stats(await restLoad(d, ids, 100, 10));
    const t0 = performance.now();
    await d.stop();
    const stopMs = performance.now() - t0;
    rows.push(
      { figure: `idle 1280x720 sessions held (--max-sessions 200; stopped by ${stoppedBy})`, handoff: String(made), reference: '', ratio: '', target: '>= 100 on 24 GB', ok: made >= 100 },
      { figure: 'PSS per idle session (MB)', handoff: fmt(total / Math.max(1, made) / 1024 / 1024, 0), reference: '', ratio: '', target: 'report', ok: null },
      { figure: `REST p99 with ${made} idle sessions, 100 clients (ms)`, handoff: fmt(s.p99, 1), reference: '', ratio: '', target: 'report', ok: null },
      { figure: `daemon stop with ${made} sessions (ms)`, handoff: fmt(stopMs, 0), reference: '', ratio: '', target: '<= 10000', ok: stopMs <= 10_000 },
    );
  } finally {
    await d.cleanup();
  }
  return rows;
}

/** Every process below `root` (from /proc). */
export function allDescendants(root: number): number[] {
  const kids = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(name)]);
    } catch {
      // gone
    }
  }
  const out: number[] = [];
  const todo = [...(kids.get(root) ?? [])];
  for (let p = todo.pop(); p !== undefined; p = todo.pop()) {
    out.push(p);
    todo.push(...(kids.get(p) ?? []));
  }
  return out;
}

