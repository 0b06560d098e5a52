/**
 * LaunchedProcess.close() on a real bubblewrap sandbox: it resolves only once nothing started
 * in the sandbox runs any more. A SIGKILL of the group ends the outer bwrap at once, but the
 * sandbox's own init (pid 1 of its namespace) and what runs under it may take a while longer
 * to tear down their memory; a daemon that exited before would leave them to whoever reaps
 * next (a test's leak check saw one under load).
 */
import { expect, it } from 'vitest';
import { launchProcess } from '../../src/util/process.js';
import { sandboxed, SANDBOX_PATH } from '../../src/util/sandbox.js';
import { alive, processTable, waitFor } from '../helpers/client.js';

/** Every process under `pid` now, with its start time (a pid reused meanwhile is another process). */
function descendants(pid: number): Map<number, string> {
  const table = processTable();
  const out = new Map<number, string>();
  const todo = [pid];
  while (todo.length) {
    const p = todo.pop()!;
    for (const [child, row] of table) if (row.ppid === p) (out.set(child, row.started), todo.push(child));
  }
  return out;
}

/** Those of `procs` that still run (a zombie has exited: only its parent's reaping is left). */
function stillRunning(procs: Map<number, string>): number[] {
  const now = processTable();
  return [...procs].filter(([pid, started]) => now.get(pid)?.started === started && alive(pid)).map(([pid]) => pid);
}

it('close(0) of a sandboxed program returns once every process in its sandbox has exited', async () => {
  // Inside: a program in a process group of its own (the group SIGKILL misses it, only the
  // end of the pid namespace kills it) holding 1 GB it has written to, so its exit takes time.
  const hog = 'const b = Buffer.alloc(1 << 30, 1); process.stdout.write("ready\\n"); setInterval(() => b[0]++, 1000);';
  const parent = `const c = require('child_process').spawn(process.execPath, ['-e', ${JSON.stringify(hog)}], { detached: true, stdio: ['ignore', 'inherit', 'ignore'] }); setInterval(() => {}, 1000);`;
  const cmd = sandboxed(process.execPath, ['-e', parent], { env: { PATH: SANDBOX_PATH } });
  const proc = launchProcess(cmd.cmd, cmd.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let out = '';
    proc.child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    await waitFor('the 1 GB program inside', () => out.includes('ready'), 30_000);
    const inside = descendants(proc.pid);
    expect(inside.size).toBeGreaterThanOrEqual(3); // bwrap's init, the node parent, the hog
    await proc.close(0);
    expect(stillRunning(inside)).toEqual([]);
  } finally {
    await proc.close(0);
  }
}, 60_000);
