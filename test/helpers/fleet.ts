import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { startDaemon, type RunningDaemon } from './daemon.js';

/**
 * Issue 16: handoff hosts on 127.0.0.2 and 127.0.0.3 behind HAProxy on 127.0.0.1, started from
 * the shipped deploy/haproxy/haproxy.cfg with only its addresses and file paths replaced.
 */
export const DEPLOY = resolve(import.meta.dirname, '../../deploy/haproxy');
export const HOST_IPS = ['127.0.0.2', '127.0.0.3'] as const;

export interface FleetHost {
  name: 'h1' | 'h2';
  ip: string;
  url: string;
  daemon: RunningDaemon;
  stateDir: string;
}

export interface Balancer {
  name: string;
  url: string;
  wsUrl: string;
  proc: ChildProcess;
  logs: () => string;
  close(): Promise<void>;
}

/** A TCP port free on every given address. */
export async function freePort(ips: readonly string[]): Promise<number> {
  for (;;) {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, ips[0], r));
    const p = (srv.address() as AddressInfo).port;
    await new Promise((r) => srv.close(r));
    const free = await Promise.all(
      ips.slice(1).map(
        (ip) =>
          new Promise<boolean>((r) => {
            const s = createServer();
            s.once('error', () => r(false));
            s.listen(p, ip, () => s.close(() => r(true)));
          }),
      ),
    );
    if (free.every(Boolean)) return p;
  }
}

/** Every host listens on the same ports, each on its own address, with its own --public-url. */
export interface FleetPorts {
  http: number;
  vnc: number;
}

export async function fleetPorts(): Promise<FleetPorts> {
  return { http: await freePort(HOST_IPS), vnc: await freePort(HOST_IPS) };
}

export async function startHost(name: FleetHost['name'], ports: FleetPorts, extraArgs: string[] = [], stateDir?: string): Promise<FleetHost> {
  const ip = HOST_IPS[name === 'h1' ? 0 : 1];
  const url = `http://${ip}:${ports.http}`;
  // Two daemons start at once on a shared machine: more time than the helper's default.
  const daemon = await startDaemon({ args: ['--host', ip, '--port', String(ports.http), '--vnc-port', String(ports.vnc), '--public-url', url, ...extraArgs], stateDir, startTimeoutMs: 45_000 });
  return { name, ip, url, daemon, stateDir: daemon.stateDir };
}

/** The shipped config with the example addresses and paths replaced; throws if one is missing. */
export function balancerConfig(httpPort: number, lbPort: number, peerPorts: [number, number]): string {
  const swaps: [string | RegExp, string][] = [
    ['10.0.0.10:9222', `127.0.0.1:${lbPort}`],
    ['10.0.0.21:9222', `${HOST_IPS[0]}:${httpPort}`],
    ['10.0.0.22:9222', `${HOST_IPS[1]}:${httpPort}`],
    ['10.0.0.11:10000', `127.0.0.1:${peerPorts[0]}`],
    ['10.0.0.12:10000', `127.0.0.1:${peerPorts[1]}`],
    ['/etc/haproxy/errors/', `${DEPLOY}/errors/`],
    // In the foreground as the test's user: no chroot, no syslog, no admin socket.
    [/^\s*(chroot|user|group|daemon|stats socket|log \/dev\/log)\b.*$/gm, ''],
  ];
  let text = readFileSync(join(DEPLOY, 'haproxy.cfg'), 'utf8');
  for (const [from, to] of swaps) {
    const before = text;
    text = typeof from === 'string' ? text.split(from).join(to) : text.replace(from, to);
    if (text === before) throw new Error(`deploy/haproxy/haproxy.cfg no longer contains ${String(from)}`);
  }
  return text;
}

/** Starts `haproxy -L NAME` in the foreground on the shipped config; resolves once it accepts. */
export async function startBalancer(name: string, dir: string, httpPort: number, lbPort: number, peerPorts: [number, number]): Promise<Balancer> {
  const cfg = join(dir, `${name}.cfg`);
  writeFileSync(cfg, balancerConfig(httpPort, lbPort, peerPorts));
  const proc = spawn('haproxy', ['-db', '-L', name, '-f', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`haproxy ${name} exited: ${out}`);
    const up = await new Promise<boolean>((r) => {
      const s = connect(lbPort, '127.0.0.1', () => (s.destroy(), r(true)));
      s.once('error', () => r(false));
    });
    if (up) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`haproxy ${name} did not listen: ${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = `http://127.0.0.1:${lbPort}`;
  return {
    name,
    url,
    wsUrl: url.replace('http://', 'ws://'),
    proc,
    logs: () => out,
    async close() {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        await exited;
      }
    },
  };
}
