// Runs inside the air-gapped root with the bundle's own Node and its `ws`: creates a session
// over CDP (API.md 3.1), evaluates in its page, reads /health and the audit, stops it.
// Prints one JSON line of results; any failure exits non-zero with the reason.
import { createRequire } from 'node:module';

const require = createRequire('/opt/handoff/package.json');
const WebSocket = require('ws');
const BASE = 'http://127.0.0.1:9222';
const started = Number(process.argv[2] ?? Date.now());
const out = {};

async function get(path, init) {
  const res = await fetch(BASE + path, init);
  const body = await res.text();
  if (!res.ok) throw new Error(`${init?.method ?? 'GET'} ${path}: ${res.status} ${body.slice(0, 200)}`);
  return JSON.parse(body);
}

async function until(what, fn, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`${what}: ${e.message}`);
    }
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function call(ws, id, method, params = {}, sessionId) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${method}: no answer in 30 s`)), 30_000);
    const onMessage = (data) => {
      const msg = JSON.parse(data.toString());
      if (msg.id !== id) return;
      ws.off('message', onMessage);
      clearTimeout(timer);
      if (msg.error) reject(new Error(`${method}: ${JSON.stringify(msg.error)}`));
      else resolve(msg.result);
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
  });
}

const health = await until('GET /health', () => get('/health').then((h) => h.ok && h), 60_000);
out.health = health.ok;

const id = 'airgap-1';
const ws = new WebSocket(`ws://127.0.0.1:9222/?session=${id}&auto_close=false`);
await new Promise((resolve, reject) => {
  ws.once('open', resolve);
  ws.once('error', reject);
  ws.once('unexpected-response', (_req, res) => reject(new Error(`CDP upgrade: ${res.statusCode}`)));
});
const version = await call(ws, 1, 'Browser.getVersion');
out.first_cdp_answer_s = (Date.now() - started) / 1000;
out.browser = version.product;
const { targetInfos } = await call(ws, 2, 'Target.getTargets');
const page = targetInfos.find((t) => t.type === 'page');
if (!page) throw new Error('no page target');
const { sessionId } = await call(ws, 3, 'Target.attachToTarget', { targetId: page.targetId, flatten: true });
const r = await call(ws, 4, 'Runtime.evaluate', { expression: '6 * 7 + ":" + navigator.userAgent.includes("Chrome")', returnByValue: true }, sessionId);
out.evaluate = r.result.value;
if (out.evaluate !== '42:true') throw new Error(`Runtime.evaluate returned ${JSON.stringify(r.result)}`);
ws.close();

const s = await get(`/session/${id}`);
out.session_state = s.state;
const audit = await get(`/audit?session_id=${id}&limit=100`);
out.audit_types = [...new Set(audit.events.map((e) => e.type))];
if (!audit.events.length) throw new Error('no audit rows for the session');
await get(`/session/${id}/stop`, { method: 'POST' });
const stopped = await until('session stopped', () => get(`/session/${id}`).then((x) => x.state === 'stopped' && x), 30_000);
out.stopped = stopped.state;
out.audit_after_stop = (await get(`/audit?session_id=${id}&limit=100`)).events.map((e) => e.type);
console.log(JSON.stringify(out));
