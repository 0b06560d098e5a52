/**
 * Issue 16 figures: what the balancer costs. Two hosts on 127.0.0.2 and 127.0.0.3 behind
 * HAProxy on 127.0.0.1 (deploy/haproxy/haproxy.cfg, addresses and paths replaced, as in the
 * fleet test); session creation and CDP round trips through HAProxy against straight to the
 * owning host, interleaved in the same run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetPorts, freePort, startBalancer, startHost, type Balancer, type FleetHost } from '../test/helpers/fleet.js';
import { RawCdp, stats, fmt } from './lib.js';
import type { Row } from './core.js';

async function pageSession(cdp: RawCdp): Promise<string> {
  const { targetInfos } = await cdp.send('Target.getTargets');
  const page = targetInfos.find((t: { type: string }) => t.type === 'page');
  const { sessionId } = await cdp.send('Target.attachToTarget', { targetId: page.targetId, flatten: true });
  return sessionId;
}

async function roundTrips(cdp: RawCdp, sessionId: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await cdp.send('Runtime.evaluate', { expression: '1' }, sessionId);
    out.push(performance.now() - t);
  }
  return out;
}

async function waitGone(hosts: FleetHost[], id: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const states = await Promise.all(hosts.map(async (h) => (await fetch(`${h.url}/session/${id}`)).json() as Promise<{ state?: string }>));
    if (states.every((s) => !s.state || s.state === 'stopped' || s.state === 'crashed')) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function ownerOf(hosts: FleetHost[], id: string): Promise<FleetHost> {
  for (const h of hosts) if ((await fetch(`${h.url}/session/${id}`)).status === 200) return h;
  throw new Error(`no host has ${id}`);
}

export async function benchFleet(log: (s: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  const tmp = mkdtempSync(join(tmpdir(), 'handoff-bench-fleet-'));
  const ports = await fleetPorts();
  const hosts: FleetHost[] = [];
  let lb: Balancer | undefined;
  try {
    hosts.push(...(await Promise.all([startHost('h1', ports), startHost('h2', ports)])));
    const local = ['127.0.0.1'];
    lb = await startBalancer('lb1', tmp, ports.http, await freePort(local), [await freePort(local), await freePort(local)]);
    for (let i = 0; i < 100; i++) {
      const h = await fetch(`${lb.url}/health`).then((r) => r.json() as Promise<{ full?: boolean }>).catch(() => null);
      if (h?.full === false) break;
      await new Promise((r) => setTimeout(r, 100));
    }

    log('session creation through HAProxy vs straight to a host (6 each, interleaved)...');
    const viaLb: number[] = [];
    const straight: number[] = [];
    for (let i = 0; i < 6; i++) {
      for (const [url, out, id] of [
        [`${lb.wsUrl}/?session=lb-${i}`, viaLb, `lb-${i}`],
        [`${hosts[i % 2]!.url.replace('http://', 'ws://')}/?session=direct-${i}`, straight, `direct-${i}`],
      ] as const) {
        const t = performance.now();
        const c = await RawCdp.open(url);
        await c.send('Browser.getVersion');
        out.push(performance.now() - t);
        await c.close();
        await waitGone(hosts, id);
      }
    }
    const a = stats(viaLb);
    const b = stats(straight);
    rows.push({ figure: 'session creation p50 (ms)', handoff: fmt(a.p50, 0), reference: fmt(b.p50, 0), ratio: fmt(a.p50 / b.p50), target: 'report', ok: null });
    rows.push({ figure: 'session creation p95 (ms)', handoff: fmt(a.p95, 0), reference: fmt(b.p95, 0), ratio: fmt(a.p95 / b.p95), target: 'report', ok: null });

    log('CDP round trips through HAProxy vs straight to the owner (2000 each, interleaved in blocks of 250)...');
    // Two sessions on the same host: one reached through the balancer, one straight.
    const via = await RawCdp.open(`${lb.wsUrl}/?session=rt-lb&auto_close=false`);
    const owner = await ownerOf(hosts, 'rt-lb');
    const direct = await RawCdp.open(`${owner.url.replace('http://', 'ws://')}/?session=rt-direct&auto_close=false`);
    const [sv, sd] = [await pageSession(via), await pageSession(direct)];
    await roundTrips(via, sv, 200); // warm up
    await roundTrips(direct, sd, 200);
    const p: number[] = [];
    const d: number[] = [];
    for (let block = 0; block < 8; block++) {
      p.push(...(await roundTrips(via, sv, 250)));
      d.push(...(await roundTrips(direct, sd, 250)));
    }
    const ps = stats(p);
    const ds = stats(d);
    rows.push({ figure: 'CDP round trip p50 (ms)', handoff: fmt(ps.p50, 3), reference: fmt(ds.p50, 3), ratio: fmt(ps.p50 / ds.p50), target: 'report', ok: null });
    rows.push({ figure: 'CDP round trip p99 (ms)', handoff: fmt(ps.p99, 3), reference: fmt(ds.p99, 3), ratio: fmt(ps.p99 / ds.p99), target: 'report', ok: null });
    await via.close();
    await direct.close();
  } finally {
    await lb?.close();
    await Promise.all(hosts.map((h) => h.daemon.cleanup()));
    rmSync(tmp, { recursive: true, force: true });
  }
  return rows;
}
