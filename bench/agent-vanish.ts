/**
 * Issue 15 figure: time from an agent process's `kill -9` to the session's attachment `none`
 * (what lets the next agent in). A real Puppeteer process connects, is SIGKILLed, and the
 * daemon's REST view is polled every 5 ms; the default `--agent-keepalive` (10 s) stays as
 * it is, so the figure is the daemon noticing the dead socket, not the keepalive.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { startDaemon } from '../test/helpers/daemon.js';
import { PUPPETEER_AGENT } from '../test/helpers/agents.js';
import { fmt, stats } from './lib.js';
import type { Row } from './core.js';

const ROOT = resolve(import.meta.dirname, '..');

export async function benchAgentVanish(log: (s: string) => void, n = 15): Promise<Row[]> {
  const daemon = await startDaemon();
  const attachment = async () => ((await (await fetch(`${daemon.url}/session/vanish`)).json()) as { attachment: string }).attachment;
  try {
    await fetch(`${daemon.url}/devtools/browser?session=vanish`, { method: 'POST' });
    const samples: number[] = [];
    log(`kill -9 of a Puppeteer agent to attachment none, ${n} times...`);
    for (let i = 0; i < n; i++) {
      const child = spawn(process.execPath, ['--input-type=module', '-e', PUPPETEER_AGENT, `${daemon.wsUrl}/devtools/browser/vanish`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
      await new Promise<void>((ok, fail) => {
        child.stdout!.on('data', (b: Buffer) => b.includes('connected') && ok());
        child.once('exit', () => fail(new Error('the agent process exited before connecting')));
      });
      const t0 = performance.now();
      child.kill('SIGKILL');
      while ((await attachment()) !== 'none') await new Promise((r) => setTimeout(r, 5));
      samples.push(performance.now() - t0);
    }
    const s = stats(samples);
    return [
      { figure: 'agent kill -9 to attachment none p50 (ms)', handoff: fmt(s.p50, 0), reference: '', ratio: '', target: '<= 2000', ok: s.p50 <= 2000 },
      { figure: 'agent kill -9 to attachment none max (ms)', handoff: fmt(Math.max(...samples), 0), reference: '', ratio: '', target: '<= 2000', ok: Math.max(...samples) <= 2000 },
    ];
  } finally {
    await daemon.cleanup();
  }
}
