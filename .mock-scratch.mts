// Scratch mock daemon for looking at the pages (not part of the repo).
import sharp from 'sharp';
import { HttpServer, sendJson } from '/work/main/src/http/server.ts';
import { assetRoutes } from '/work/main/src/http/routes/assets.ts';
import { silentLogger } from '/work/main/src/util/logger.ts';
import { readFileSync } from 'node:fs';

const W = 1280, H = 720;
const http = new HttpServer({ apiKey: process.env.KEY || null, logger: silentLogger, onAuthFailed: () => {} });
assetRoutes(http);
const now = Date.now();
const iso = (d: number) => new Date(now + d).toISOString();
const handoff = { id: 'h1', reason: 'Please solve the captcha on the login page', requested_at: iso(-42_000) };
http.route('GET', '/live/:token', (_c, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end(readFileSync('/work/main/src/http/assets/live.html')); }, true);
http.route('GET', '/live/:token/info', (c, res) => {
  if (c.params.token === 'expired') return sendJson(res, 410, { error: { code: 'link_expired', message: 'expired' } });
  sendJson(res, 200, { sessionId: 'checkout-42', width: W, height: H, state: 'ready', transports: { screencast: true, webrtc: true, vnc: true }, attachment: 'human', handoff, viewOnly: false });
}, true);
http.route('GET', '/live/:token/downloads', (_c, res) => sendJson(res, 200, { files: [{ name: 'invoice-2024.pdf', size: 183_422, completed_at: iso(-5000) }, { name: 'report (1).csv', size: 912, completed_at: iso(-1000) }] }), true);
const svg = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><rect width="100%" height="100%" fill="#f3f4f6"/><rect x="0" y="0" width="${W}" height="56" fill="#1f2937"/><text x="24" y="36" font-size="22" fill="#fff" font-family="sans-serif">Example Shop — Sign in</text><rect x="440" y="160" width="400" height="360" rx="12" fill="#fff" stroke="#d1d5db"/><text x="480" y="220" font-size="26" font-family="sans-serif" fill="#111">Sign in</text><rect x="480" y="250" width="320" height="44" rx="6" fill="#fff" stroke="#9ca3af"/><rect x="480" y="310" width="320" height="44" rx="6" fill="#fff" stroke="#9ca3af"/><rect x="480" y="380" width="320" height="74" rx="6" fill="#e5e7eb"/><text x="520" y="423" font-size="16" font-family="sans-serif" fill="#374151">I'm not a robot</text><rect x="480" y="470" width="320" height="36" rx="6" fill="#2563eb"/></svg>`);
const jpeg = await sharp(svg).jpeg({ quality: 80 }).toBuffer();
http.upgrade('/live/:token/screencast', async (_c, up) => {
  const ws = await up.accept();
  ws.send(JSON.stringify({ type: 'hello', sessionId: 'checkout-42', width: W, height: H, transport: 'screencast' }));
  ws.send(JSON.stringify({ type: 'state', canControl: process.env.VIEWONLY ? false : true, attachment: 'human', handoff, viewers: { screencast: 1, webrtc: 0, vnc: 0 }, downloads: 2 }));
  let seq = 0;
  const frame = () => { const hdr = Buffer.alloc(14); hdr[0] = 2; hdr.writeUInt32BE(++seq, 1); hdr.writeUInt16BE(W, 9); hdr.writeUInt16BE(H, 11); ws.send(Buffer.concat([hdr, jpeg])); };
  ws.on('message', (m) => { const msg = JSON.parse(String(m)); if (msg.type === 'ack') setTimeout(frame, 40); else console.log('viewer:', String(m)); });
  frame();
}, true);
const sessions = [
  { session_id: 'checkout-42', run_id: 'r1', state: 'ready', attachment: 'human', attached_by: 'human', auto_close: false, width: 1280, height: 720, created_at: iso(-754_000), last_activity_at: iso(-1000), expires_at: null, transports: { screencast: true, webrtc: false, vnc: true }, viewers: { screencast: 2, webrtc: 0, vnc: 1 }, vnc_url: 'vnc://r1@127.0.0.1:5901', debug: false, handoff },
  { session_id: 'scraper-7f3a', run_id: 'r2', state: 'ready', attachment: 'agent', attached_by: 'agent', auto_close: true, width: 1920, height: 1080, created_at: iso(-62_000), last_activity_at: iso(-1000), expires_at: null, transports: { screencast: true, webrtc: false, vnc: false }, viewers: { screencast: 0, webrtc: 0, vnc: 0 }, vnc_url: null, debug: false, handoff: null },
  { session_id: 'idle-session', run_id: 'r3', state: 'ready', attachment: 'none', attached_by: '', auto_close: false, width: 1280, height: 720, created_at: iso(-3_900_000), last_activity_at: iso(-100_000), expires_at: iso(734_000), transports: { screencast: true, webrtc: false, vnc: false }, viewers: { screencast: 0, webrtc: 0, vnc: 0 }, vnc_url: null, debug: false, handoff: null },
  { session_id: 'old-run', run_id: 'r4', state: 'stopped', attachment: 'none', attached_by: '', auto_close: true, width: 1280, height: 720, created_at: iso(-5_000_000), last_activity_at: iso(-4_000_000), expires_at: null, transports: { screencast: true, webrtc: false, vnc: false }, viewers: { screencast: 0, webrtc: 0, vnc: 0 }, vnc_url: null, debug: false, handoff: null },
];
http.route('GET', '/sessions', (_c, res) => sendJson(res, 200, { sessions }));
http.route('GET', '/session/:id/live', (c, res) => sendJson(res, 200, { url: `http://${c.publicHost}/live/tok-${c.params.id}`, expires_at: iso(300_000 + (Date.now() - now)) }));
http.route('POST', '/session/:id/stop', (_c, res) => sendJson(res, 200, { stopped: true }));
http.route('GET', '/health', (_c, res) => sendJson(res, 200, { ok: true, version: '0.1.0', uptime_s: 5, sessions: 3, max_sessions: 8, browser: 'Chrome/156.0.8078.79' }), true);
const types = ['session_created', 'cloud_browser_agent_attach', 'live_url_issued', 'handoff_requested', 'download_completed'];
http.route('GET', '/audit', (_c, res) => sendJson(res, 200, { events: types.map((t, i) => ({ id: 20 - i, ts: iso(-i * 17_000), type: t, session_id: i % 2 ? 'checkout-42' : 'scraper-7f3a', run_id: 'r1', transport: i === 1 ? 'cdp' : '', source_ip: '127.0.0.1', actor: i === 1 ? 'agent' : '', detail: i === 3 ? { reason: handoff.reason } : i === 4 ? { name: 'invoice-2024.pdf', size: 183422 } : {} })) }));
const addr = await http.listen(Number(process.env.PORT || 0), '127.0.0.1');
console.log(`mock on http://127.0.0.1:${addr.port}`);
