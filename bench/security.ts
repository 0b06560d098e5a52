/**
 * Issue 8 figures (HTTP part): how fast a forged-Origin WebSocket upgrade is refused, against
 * a plain GET /health on a fresh connection (the cheapest answer the daemon gives), same run.
 */
import { connect } from 'node:net';
import { startDaemon } from '../test/helpers/daemon.js';
import { stats, fmt } from './lib.js';
import type { Row } from './core.js';

/** One fresh connection, `request` written; resolves with the ms until the answer's head arrived, and its status line. */
function exchange(port: number, request: string): Promise<{ ms: number; status: string }> {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const s = connect(port, '127.0.0.1', () => s.write(request));
    s.setNoDelay(true);
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      text += d;
      if (!text.includes('\r\n\r\n')) return;
      resolve({ ms: performance.now() - t, status: text.slice(0, text.indexOf('\r\n')) });
      s.destroy();
    });
    s.on('error', reject);
  });
}

/** `n` exchanges of each request, interleaved so both see the same load; the first 50 warm up. */
async function sample(port: number, requests: { request: string; expect: RegExp }[], n: number): Promise<number[][]> {
  const out: number[][] = requests.map(() => []);
  for (let i = 0; i < n + 50; i++) {
    for (const [k, { request, expect }] of requests.entries()) {
      const r = await exchange(port, request);
      if (!expect.test(r.status)) throw new Error(`unexpected answer: ${r.status}`);
      if (i >= 50) out[k]!.push(r.ms);
    }
  }
  return out;
}

export async function benchSecurity(log: (s: string) => void): Promise<Row[]> {
  const daemon = await startDaemon();
  try {
    const host = `127.0.0.1:${daemon.port}`;
    const forged =
      `GET /?session=bench HTTP/1.1\r\nHost: ${host}\r\nOrigin: https://evil.example\r\nUpgrade: websocket\r\n` +
      'Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';
    const health = `GET /health HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
    const n = 500;
    log(`forged-Origin upgrades x${n}...`);
    const [refusedMs, plainMs] = await sample(daemon.port, [{ request: forged, expect: /^HTTP\/1\.1 403 / }, { request: health, expect: /^HTTP\/1\.1 200 / }], n);
    const refused = stats(refusedMs!);
    const plain = stats(plainMs!);
    return [
      {
        figure: 'forged-Origin upgrade refused (403), connect to answer, ms p50 / p99',
        handoff: `${fmt(refused.p50)} / ${fmt(refused.p99)}`,
        reference: `${fmt(plain.p50)} / ${fmt(plain.p99)} (GET /health)`,
        ratio: fmt(refused.p50 / plain.p50),
        target: 'refused before any session work',
        ok: null,
      },
    ];
  } finally {
    await daemon.cleanup();
  }
}
