/**
 * What the session sandbox adds to starting a process (issue 8 item 4): `/usr/bin/true`
 * launched plain and through bubblewrap, the way sessions launch Chromium and ffmpeg (pid
 * namespace) and Xvfb (none). A session starts Xvfb, then Chromium: about twice the
 * difference is added to session creation. Run: node --import tsx bench/sandbox.ts
 */
import { launchProcess } from '../src/util/process.js';
import { SANDBOX_PATH, sandboxed } from '../src/util/sandbox.js';

const RUNS = 30;

async function spawnTimes(cmd: string, args: string[]): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t0 = performance.now();
    await launchProcess(cmd, args, { env: {} }).exited;
    out.push(performance.now() - t0);
  }
  return out.sort((a, b) => a - b);
}

const fmt = (t: number[]) => `median ${t[t.length >> 1]!.toFixed(1)} ms, p90 ${t[Math.floor(t.length * 0.9)]!.toFixed(1)} ms`;
const env = { PATH: SANDBOX_PATH };
const withPidNs = sandboxed('/usr/bin/true', [], { env });
const withoutPidNs = sandboxed('/usr/bin/true', [], { env, pidNamespace: false });
process.stdout.write(`plain                 ${fmt(await spawnTimes('/usr/bin/true', []))}\n`);
process.stdout.write(`sandboxed (pid ns)    ${fmt(await spawnTimes(withPidNs.cmd, withPidNs.args))}\n`);
process.stdout.write(`sandboxed (no pid ns) ${fmt(await spawnTimes(withoutPidNs.cmd, withoutPidNs.args))}\n`);
