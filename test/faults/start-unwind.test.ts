import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server, type AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Daemon } from '../../src/main.js';
import { loadConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/util/logger.js';

/**
 * Issue 10 item 3: a failed `Daemon.start` must unwind what it built (DESIGN.md "Start is a
 * disposable stack"): no pid file left behind, no database handle left open.
 */
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Files of this process whose path is under `dir`. */
function openFilesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir)) out.push(target);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

async function takenPort(): Promise<number> {
  const srv: Server = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => srv.close(r)));
  return (srv.address() as AddressInfo).port;
}

function stateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'handoff-start-unwind-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const quiet = createLogger('error', {}, () => {});
const config = (dir: string, port: number) => loadConfig(['--state-dir', dir, '--port', String(port), '--vnc-port', '0', '--host', '127.0.0.1'], {}, () => '');

describe('a failed Daemon.start unwinds', () => {
  it('the port is taken: start rejects, the pid file is removed and the database closed', async () => {
    const dir = stateDir();
    const port = await takenPort();
    await expect(Daemon.start(config(dir, port), quiet)).rejects.toThrow(/EADDRINUSE/);
    expect(existsSync(join(dir, 'handoff.db'))).toBe(true); // it got that far
    expect(existsSync(join(dir, 'handoff.pid'))).toBe(false);
    expect(openFilesUnder(dir)).toEqual([]);
  });

  it('another daemon holds the state dir: its pid file is left alone', async () => {
    const dir = stateDir();
    // A live process that is not us: the parent of this test worker.
    writeFileSync(join(dir, 'handoff.pid'), String(process.ppid));
    await expect(Daemon.start(config(dir, 0), quiet)).rejects.toThrow(/another handoff daemon/);
    expect(readFileSync(join(dir, 'handoff.pid'), 'utf8')).toBe(String(process.ppid));
    expect(openFilesUnder(dir)).toEqual([]);
  });

  it('after an unwound start, a start in the same state dir works and stops cleanly', async () => {
    const dir = stateDir();
    await expect(Daemon.start(config(dir, await takenPort()), quiet)).rejects.toThrow(/EADDRINUSE/);
    const d = await Daemon.start(config(dir, 0), quiet);
    expect(readFileSync(join(dir, 'handoff.pid'), 'utf8')).toBe(String(process.pid));
    await d.close();
    expect(existsSync(join(dir, 'handoff.pid'))).toBe(false);
    expect(openFilesUnder(dir)).toEqual([]);
  });
});
