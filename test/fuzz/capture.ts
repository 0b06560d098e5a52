/**
 * Records the fuzz seeds (test/fuzz/seeds/) from a real daemon and real clients:
 *   node --import tsx test/fuzz/capture.ts
 *
 * - RFB: the client's bytes, in the chunks they arrived in, through a TCP recorder in front of
 *   the VNC port: rfb2, a TigerVNC-style client (RawRfb announcing TigerVNC's encoding list),
 *   vncsnapshot (TightVNC's code); noVNC's WebSocket frames from the viewer page, read with
 *   CDP Network.webSocketFrameSent in the viewer's own Chromium.
 * - CDP: Puppeteer's and Playwright's first 200 frames each way, through a WebSocket recorder
 *   in front of the daemon (client -> daemon are agent commands; daemon -> client are what
 *   Chromium wrote on the pipe, the splitter's input).
 * - Viewer sockets: the screencast and WebRTC viewers' messages, from the viewer page.
 * Each seed file is a JSON array of base64 strings, one per chunk or message.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';
import { chromium as playwright } from 'playwright-core';
import { WebSocket, WebSocketServer } from 'ws';
import { startDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';
import rfb2 from 'rfb2';
import { freePort, vncPasswordFile, vncsnapshot } from '../helpers/vnc.js';
import { Enc, RawRfb } from '../helpers/vnc-raw.js';
import { CHROMIUM } from '../helpers/webrtc-harness.js';

const SEEDS = join(import.meta.dirname, 'seeds');
const FRAMES = 200;
const PASSWORD = 'seedpass';
const log = (s: string) => process.stdout.write(`capture: ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function save(name: string, chunks: Buffer[]): void {
  writeFileSync(join(SEEDS, `${name}.json`), JSON.stringify(chunks.map((c) => c.toString('base64')), null, 0) + '\n');
  log(`${name}: ${chunks.length} chunks, ${chunks.reduce((n, c) => n + c.length, 0)} bytes`);
}

/** A TCP forwarder that keeps what each client sent, one array per connection. */
async function tcpRecorder(target: number): Promise<{ port: number; conns: Buffer[][]; close(): void }> {
  const conns: Buffer[][] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((c) => {
    const sent: Buffer[] = [];
    conns.push(sent);
    const up = net.connect(target, '127.0.0.1');
    for (const s of [c, up]) {
      sockets.add(s);
      s.on('error', () => {});
    }
    c.on('data', (d) => {
      sent.push(Buffer.from(d));
      up.write(d);
    });
    up.on('data', (d) => c.write(d));
    c.on('close', () => up.destroy());
    up.on('close', () => c.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    conns,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/** A WebSocket forwarder keeping the first FRAMES messages each way of every connection. */
async function wsRecorder(upstream: string): Promise<{ url: string; conns: { up: Buffer[]; down: Buffer[] }[]; close(): void }> {
  const conns: { up: Buffer[]; down: Buffer[] }[] = [];
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', maxPayload: 1 << 30 });
  wss.on('connection', (client, req) => {
    const rec = { up: [] as Buffer[], down: [] as Buffer[] };
    conns.push(rec);
    const server = new WebSocket(upstream + req.url, { maxPayload: 1 << 30 });
    const queue: [Buffer, boolean][] = [];
    server.on('open', () => {
      for (const [d, b] of queue.splice(0)) server.send(d, { binary: b });
    });
    client.on('message', (d: Buffer, isBinary) => {
      if (rec.up.length < FRAMES) rec.up.push(Buffer.from(d));
      if (server.readyState === WebSocket.OPEN) server.send(d, { binary: isBinary });
      else queue.push([d, isBinary]);
    });
    server.on('message', (d: Buffer, isBinary) => {
      if (rec.down.length < FRAMES) rec.down.push(Buffer.from(d));
      client.send(d, { binary: isBinary });
    });
    client.on('close', () => server.close());
    server.on('close', () => client.close());
    client.on('error', () => {});
    server.on('error', () => client.terminate());
  });
  await new Promise((r) => wss.once('listening', r));
  return { url: `ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}`, conns, close: () => wss.close() };
}

/** Opens `url` in a viewer tab and returns the WebSocket frames the page sent, in order. */
async function pageFrames(viewers: Browser, url: string, act: (page: import('puppeteer-core').Page) => Promise<void>): Promise<Buffer[]> {
  const page = await viewers.newPage();
  await page.setViewport({ width: 1000, height: 700 });
  const cdp = await page.createCDPSession();
  await cdp.send('Network.enable');
  const frames: Buffer[] = [];
  cdp.on('Network.webSocketFrameSent', (e) => {
    const f = e.response;
    frames.push(f.opcode === 1 ? Buffer.from(f.payloadData, 'utf8') : Buffer.from(f.payloadData, 'base64'));
  });
  await page.goto(url);
  await act(page);
  await page.close();
  return frames;
}

mkdirSync(SEEDS, { recursive: true });
const vncPort = await freePort();
const d = await startDaemon({ args: ['--vnc-port', String(vncPort)] });
const tmp = mkdtempSync(join(tmpdir(), 'handoff-capture-'));
let viewers: Browser | null = null;
try {
  // Agents: Puppeteer and Playwright, through the recorder; the Puppeteer session has VNC.
  const cdp = await wsRecorder(d.wsUrl);
  const pptr = await puppeteer.connect({ browserWSEndpoint: `${cdp.url}/?session=seed&auto_close=false&enable_vnc=true&vnc_password=${PASSWORD}&enable_rtc=true&rtc_password=${PASSWORD}`, defaultViewport: null });
  const page = (await pptr.pages())[0]!;
  await page.setContent('<title>seed</title><body style="background:#c33"><input id=q><a href="#x">link</a><canvas id=c width=300 height=200></canvas>');
  await page.type('#q', 'hello handoff');
  await page.click('a');
  await page.evaluate(() => document.title + location.href);
  await page.screenshot({ type: 'jpeg', quality: 50 });
  const second = await pptr.newPage();
  await second.goto('data:text/html,<h1>second</h1>');
  await second.close();
  await page.mouse.move(100, 100);
  await page.keyboard.press('Tab');
  await pptr.disconnect();
  await waitFor('puppeteer detached', async () => (await api(d.url, '/session/seed')).body.attachment === 'none');

  const pw = await playwright.connectOverCDP(`${cdp.url}/?session=seed&auto_close=false`);
  const ctx = pw.contexts()[0]!;
  const pwPage = ctx.pages()[0] ?? (await ctx.newPage());
  await pwPage.setContent('<body><button onclick="this.textContent=1">go</button><input id=q></body>');
  await pwPage.click('button');
  await pwPage.fill('#q', 'playwright');
  await pwPage.evaluate(() => navigator.userAgent);
  await pwPage.screenshot();
  const p2 = await ctx.newPage();
  await p2.goto('data:text/html,<p>two</p>');
  await p2.close();
  await pw.close();
  await waitFor('playwright detached', async () => (await api(d.url, '/session/seed')).body.attachment === 'none');
  cdp.close();
  const [pc, wc] = [cdp.conns[0]!, cdp.conns[1]!];
  save('cdp-puppeteer-client', pc.up);
  save('cdp-puppeteer-chromium', pc.down);
  save('cdp-playwright-client', wc.up);
  save('cdp-playwright-chromium', wc.down);

  // Native VNC clients through the TCP recorder.
  const rec = await tcpRecorder(vncPort);
  // rfb2 itself (RfbViewer reads it through vitest's interop; tsx gives the CJS object).
  const r2 = (rfb2 as any).createConnection({ host: '127.0.0.1', port: rec.port, password: PASSWORD, encodings: [(rfb2 as any).encodings.raw] });
  await new Promise((res, rej) => (r2.once('connect', res), r2.once('error', rej)));
  let rects = 0;
  r2.on('rect', () => rects++);
  r2.requestUpdate(false, 0, 0, r2.width, r2.height);
  await waitFor('rfb2 got a frame', () => rects > 0);
  r2.pointerEvent(50, 60, 1);
  r2.pointerEvent(50, 60, 0);
  r2.keyEvent(0x61, 1);
  r2.keyEvent(0x61, 0);
  r2.requestUpdate(true, 0, 0, r2.width, r2.height);
  await sleep(500);
  r2.end();
  r2.stream.destroy();
  save('rfb-rfb2', rec.conns.at(-1)!);

  const tiger = await RawRfb.connect(rec.port, PASSWORD);
  // TigerVNC 1.12's default list (Tight first, then its pseudo-encodings).
  tiger.setEncodings([Enc.Tight, Enc.ZRLE, Enc.Hextile, Enc.Raw, Enc.CopyRect, Enc.QualityLevel0 + 8, Enc.CompressLevel0 + 2, Enc.DesktopSize, Enc.ExtendedDesktopSize, Enc.LastRect, Enc.DesktopName, -309, -312, -313, -314, 0xc0a1e5ce | 0]);
  tiger.request(false);
  await tiger.readUpdate();
  tiger.pointer(10, 20, 0);
  tiger.pointer(10, 20, 4);
  tiger.pointer(10, 20, 0);
  // KeyEvent, ClientCutText, SetDesktopSize (refused), as TigerVNC sends them.
  const key = Buffer.alloc(8);
  key[0] = 4;
  key[1] = 1;
  key.writeUInt32BE(0xffe1, 4);
  const cut = Buffer.concat([Buffer.from([6, 0, 0, 0, 0, 0, 0, 11]), Buffer.from('clip\u00e9board', 'latin1')]);
  const size = Buffer.alloc(8 + 16);
  size[0] = 251;
  size.writeUInt16BE(1024, 2);
  size.writeUInt16BE(768, 4);
  size[6] = 1;
  size.writeUInt16BE(1024, 8 + 8);
  size.writeUInt16BE(768, 8 + 10);
  tiger.write(Buffer.concat([key, cut, size]));
  tiger.request(true);
  await sleep(500);
  tiger.destroy();
  save('rfb-tigervnc', rec.conns.at(-1)!);

  const snap = await vncsnapshot(rec.port, ['-passwd', vncPasswordFile(tmp, PASSWORD)], join(tmp, 'snap.jpg'));
  log(`vncsnapshot exited ${snap.code}`);
  save('rfb-vncsnapshot', rec.conns.at(-1)!);
  rec.close();

  // Browser viewers: noVNC, the screencast viewer and the WebRTC viewer.
  viewers = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--use-fake-ui-for-media-stream'] });
  const link = async () => (await api(d.url, '/session/seed/live?kind=control')).body.url as string;
  save(
    'rfb-novnc',
    await pageFrames(viewers, `${await link()}?transport=vnc`, async (p) => {
      const pw = await p.waitForSelector('input[type=password]', { timeout: 20_000 });
      await pw!.type(PASSWORD);
      await pw!.press('Enter');
      await sleep(1500);
      await p.mouse.click(300, 300);
      await p.keyboard.type('novnc');
      await sleep(500);
    }),
  );
  save(
    'screencast-viewer',
    await pageFrames(viewers, await link(), async (p) => {
      await sleep(1500);
      await p.mouse.move(200, 200);
      await p.mouse.click(300, 300);
      await p.mouse.wheel({ deltaY: 120 });
      await p.keyboard.type('shot');
      await sleep(500);
    }),
  );
  save(
    'webrtc-viewer',
    await pageFrames(viewers, `${await link()}?transport=webrtc`, async (p) => {
      const pw = await p.waitForSelector('input[type=password]', { timeout: 20_000 }).catch(() => null);
      if (pw) {
        await pw.type(PASSWORD);
        await pw.press('Enter');
      }
      await sleep(3000);
    }),
  );
} finally {
  await viewers?.close();
  await d.cleanup();
  rmSync(tmp, { recursive: true, force: true });
}
