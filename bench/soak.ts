/**
 * `npm run soak [-- --minutes N]` (default 60): cycles of create / attach / handoff / view /
 * stop with 10 sessions at a time against one daemon, sampling its RSS, JS heap, open fds and
 * child processes every 10 s, then the slope of each (least squares, per hour) and whether any
 * process outlived the daemon. Writes "Soak (issue 10)" in bench/RESULTS.md.
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { WebSocket } from 'ws';
import { startDaemon } from '../test/helpers/daemon.js';
import { RawCdp, fmt, machine } from './lib.js';
import { childProcessKinds } from '../src/metrics/daemon.js';

const args = process.argv.slice(2);
const minutes = Number(args[args.indexOf('--minutes') + 1] ?? 0) || Number(process.env.SOAK_MINUTES ?? 60);
const PARALLEL = 10;
/** A cycle still running after this is counted failed (start-up waits are 30 + 30 + 60 s). */
const CYCLE_TIMEOUT_MS = 180_000;
const SAMPLE_MS = 10_000;
const log = (s: string) => process.stdout.write(`soak: ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sample {
  t: number;
  rss: number;
  heap: number;
  fds: number;
  children: number;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(what)), ms)));
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den ? num / den : 0;
}

const d = await startDaemon({ args: ['--max-sessions', String(PARALLEL + 2)] });
const pid = d.proc.pid!;
const samples: Sample[] = [];
let cycles = 0;
let failures = 0;
const errors = new Map<string, number>();
const until = Date.now() + minutes * 60_000;

async function heapBytes(): Promise<number> {
  const text = await (await fetch(`${d.url}/metrics`)).text();
  return Number(/^handoff_process_heap_bytes (\d+)/m.exec(text)?.[1] ?? NaN);
}

async function sample(): Promise<void> {
  const kinds = childProcessKinds(pid);
  samples.push({
    t: Date.now(),
    rss: Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024,
    heap: await heapBytes(),
    fds: readdirSync(`/proc/${pid}/fd`).length,
    children: Object.values(kinds).reduce((a, b) => a + b, 0),
  });
}

async function post(path: string, body?: object): Promise<any> {
  const r = await fetch(`${d.url}${path}`, { method: 'POST', headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined });
  if (r.status !== 200) throw new Error(`${path}: ${r.status}`);
  return r.json();
}

/** One session's life: attach an agent, hand off, watch one screencast picture, complete, stop. */
async function cycle(worker: number, n: number): Promise<void> {
  const id = `soak${worker}-${n}`;
  const agent = await RawCdp.open(`${d.wsUrl}/?session=${id}&auto_close=false`);
  try {
    await agent.send('Target.getTargets');
    const h = await post(`/session/${id}/handoff`, { reason: 'soak' });
    const token = new URL(h.liveUrl).pathname.split('/')[2];
    const viewer = new WebSocket(`${d.wsUrl}/live/${token}/screencast`);
    await new Promise<void>((ok, fail) => {
      const t = setTimeout(() => fail(new Error('no screencast picture in 20 s')), 20_000);
      viewer.once('message', () => (clearTimeout(t), ok()));
      viewer.once('error', (e) => (clearTimeout(t), fail(e)));
    });
    viewer.close();
    await post(`/session/${id}/handoff/complete`, { outcome: 'done' });
  } finally {
    await agent.close();
  }
  await post(`/session/${id}/stop`);
}

log(`${minutes} min, ${PARALLEL} sessions at a time, sampling every ${SAMPLE_MS / 1000} s`);
await sample();
const sampler = setInterval(() => void sample().catch(() => {}), SAMPLE_MS);
await Promise.all(
  Array.from({ length: PARALLEL }, async (_, w) => {
    for (let n = 0; Date.now() < until; n++) {
      try {
        await withTimeout(cycle(w, n), CYCLE_TIMEOUT_MS, `cycle over ${CYCLE_TIMEOUT_MS / 1000} s`);
        cycles++;
      } catch (e) {
        failures++;
        const m = (e as Error).message.slice(0, 80);
        errors.set(m, (errors.get(m) ?? 0) + 1);
        await sleep(1000);
      }
    }
  }),
);
clearInterval(sampler);
await sample();
const stateDir = d.stateDir;
await d.cleanup();
await sleep(2000);
// Anything still running that names the state dir (Xvfb, Chromium, ffmpeg) outlived the daemon.
const leaked = readdirSync('/proc').filter((p) => {
  try {
    return /^\d+$/.test(p) && readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(stateDir);
  } catch {
    return false;
  }
}).length;

// Slopes per hour, over the second half onwards too (start-up growth is not a leak).
const hours = samples.map((s) => (s.t - samples[0]!.t) / 3_600_000);
const half = Math.floor(samples.length / 2);
const row = (name: string, pick: (s: Sample) => number, unit: number, unitName: string) => {
  const ys = samples.map(pick).map((v) => v / unit);
  const all = slope(hours, ys);
  const late = slope(hours.slice(half), ys.slice(half));
  return `| ${name} (${unitName}) | ${fmt(ys[0]!, 1)} | ${fmt(Math.min(...ys), 1)} / ${fmt(Math.max(...ys), 1)} | ${fmt(ys.at(-1)!, 1)} | ${fmt(all, 2)} | ${fmt(late, 2)} |`;
};
const MB = 1024 * 1024;
const section = [
  '## Soak (issue 10)',
  '',
  `Measured ${new Date().toISOString()} on ${machine()} with \`npm run soak -- --minutes ${minutes}\`: ${PARALLEL} workers, each cycling create (agent attach over CDP) / handoff over REST / one screencast picture / complete / stop. ${cycles} cycles, ${failures} failed${errors.size ? ` (${[...errors].map(([m, n]) => `${n}x ${m}`).join('; ')})` : ''}. ${samples.length} samples every ${SAMPLE_MS / 1000} s. Slopes are least squares per hour, over the whole run and over its second half. Processes left after the daemon stopped: ${leaked}. The 2 cores were shared with other work.`,
  '',
  '| figure | first | min / max | last | slope per hour | slope, 2nd half |',
  '|---|---|---|---|---|---|',
  row('daemon RSS', (s) => s.rss, MB, 'MB'),
  row('daemon JS heap used', (s) => s.heap, MB, 'MB'),
  row('daemon open fds', (s) => s.fds, 1, 'count'),
  row('child processes', (s) => s.children, 1, 'count'),
].join('\n');
process.stdout.write(section + '\n');
const file = new URL('./RESULTS.md', import.meta.url);
const previous = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmark results\n';
const re = /## Soak \(issue 10\)[\s\S]*?(?=\n## |$)/;
writeFileSync(file, re.test(previous) ? previous.replace(re, () => section + '\n') : `${previous.trimEnd()}\n\n${section}\n`);
log('wrote bench/RESULTS.md');
process.exit(leaked ? 1 : 0);
