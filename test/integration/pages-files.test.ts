import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';
import { freePort, RfbViewer } from '../helpers/vnc.js';
import { LiveSocket } from '../helpers/live-socket.js';
import { FILE_INPUT_HTML } from '../helpers/pages.js';

/**
 * Issue 11 item 1: no native file chooser, ever. A page's <input type=file> is answered by the
 * agent (POST /session/ID/uploads + setInputFiles) or by the human's own file over the live
 * connection; the host's GTK dialog (whose files are the daemon's) never opens, which the
 * framebuffer shows (the page stays on screen), and the page reads back the exact bytes.
 */

// A page that is one big file input on a flat colour; it reads every chosen file back.
const PAGE = `<!doctype html><html><head><title>files</title></head>
<body style="margin:0;background:rgb(20,140,220)">
${FILE_INPUT_HTML}
</body></html>`;
const BG = 0x148cdc;

const SID = 'files-1';
const PASSWORD = 'filespw1';
let d: RunningDaemon;
let vncPort: number;
let site: Server;
let siteUrl: string;
let agent: Browser;
let page: Page;

beforeAll(async () => {
  site = createServer((req, res) => {
    const port = (site.address() as AddressInfo).port;
    // /framed: the file input inside a cross-origin iframe (localhost inside 127.0.0.1).
    const body = req.url === '/framed' ? `<body style="margin:0;background:rgb(20,140,220)"><iframe src="http://localhost:${port}/" style="border:0;width:1280px;height:720px"></iframe></body>` : PAGE;
    res.writeHead(200, { 'content-type': 'text/html' }).end(body);
  });
  await new Promise<void>((r) => site.listen(0, '127.0.0.1', r));
  siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}/`;
  vncPort = await freePort();
  d = await startDaemon({ args: ['--vnc-port', String(vncPort)] });
  agent = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=${SID}&auto_close=false&enable_vnc=true&vnc_password=${PASSWORD}`, defaultViewport: null });
  page = (await agent.pages())[0]!;
  await page.goto(siteUrl);
}, 60_000);

afterAll(async () => {
  await agent?.disconnect();
  await d?.cleanup();
  await new Promise((r) => site?.close(r));
});

const allBytes = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) & 0xff));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
type Got = { name: string; b64?: string; error?: string }[][];
const got = (): Promise<Got> => page.evaluate(() => (window as any).got);
/** The first answer the page read, once it has one. */
const firstGot = () => waitFor('the page read a file', async () => ((await got()).length ? (await got())[0] : null));

/** The framebuffer (over VNC) around the file input's middle: the page's own colour, no dialog. */
async function pageStillOnScreen(): Promise<void> {
  const v = await RfbViewer.connect(vncPort, PASSWORD);
  try {
    await v.fullFrame();
    await v.sync();
    // The GTK chooser is a window of its own over the middle of the screen.
    for (const [x, y] of [[640, 360], [300, 400], [900, 200], [640, 600]] as const) expect(v.pixel(x, y).toString(16)).toBe(BG.toString(16));
  } finally {
    await v.close();
  }
}

describe('file inputs never open a native chooser', () => {
  it('agent: POST /session/ID/uploads stores the file, setInputFiles gives the page its exact bytes', async () => {
    const bytes = allBytes(70_000);
    const up = await api(d.url, `/session/${SID}/uploads?name=${encodeURIComponent('report 1.bin')}`, { method: 'POST', body: bytes });
    expect(up.status).toBe(200);
    expect(up.body).toMatchObject({ name: 'report 1.bin', size: bytes.length, sha256: sha(bytes) });
    const list = await api(d.url, `/session/${SID}/uploads`);
    expect(list.body.files.map((f: any) => [f.name, f.size, f.path])).toEqual([['report 1.bin', bytes.length, up.body.path]]);

    const input = (await page.$('input#f')) as import('puppeteer-core').ElementHandle<HTMLInputElement>;
    await input.uploadFile(up.body.path);
    const files = await firstGot();
    expect(files).toEqual([{ name: 'report 1.bin', b64: bytes.toString('base64') }]);

    const audit = (await api(d.url, `/audit?session_id=${SID}&type=file_uploaded`)).body.events;
    expect(audit.map((e: any) => [e.actor, e.transport, e.detail])).toEqual([['agent', 'rest', { name: 'report 1.bin', size: bytes.length, sha256: sha(bytes), by: 'agent' }]]);
  });

  it('agent: a name cannot leave the upload dir, a body over the cap is refused, a host path gives the page nothing', async () => {
    const up = await api(d.url, `/session/${SID}/uploads?name=${encodeURIComponent('../../live-link.key')}`, { method: 'POST', body: Buffer.from('mine') });
    expect(up.status).toBe(200);
    expect(up.body.name).toBe('live-link.key');
    expect(up.body.path).toBe(join(d.stateDir, 'uploads', SID, 'live-link.key'));
    expect((await api(d.url, `/session/${SID}/uploads`, { method: 'POST', body: Buffer.from('x') })).status).toBe(400);
    expect((await api(d.url, `/session/${SID}/uploads?name=big`, { method: 'POST', body: Buffer.alloc(50 * 1024 * 1024 + 1) })).status).toBe(400);

    // The daemon's own key, by path: the sandboxed browser cannot see it.
    await page.evaluate(() => ((window as any).got = []));
    await ((await page.$('input#f')) as import('puppeteer-core').ElementHandle<HTMLInputElement>).uploadFile(join(d.stateDir, 'live-link.key'));
    const files = await firstGot();
    expect(files[0]!.b64 ?? '').toBe('');
  });

  it('human: the page asks, no dialog opens, the human\'s file reaches the page byte for byte; cancel fires cancel', async () => {
    await page.evaluate(() => ((window as any).got = []));
    const human = await LiveSocket.open(d.url, SID); // a control link: a handoff gives the human input
    try {
      await waitFor('the human has control', () => human.state?.canControl === true);
      expect(human.state.fileRequest).toBeNull();
      human.click(300, 140);
      const asked = await waitFor('a file request in the state', () => human.state?.fileRequest);
      expect(asked.multiple).toBe(false);
      await pageStillOnScreen();

      const bytes = allBytes(900_000);
      human.sendFile(asked.id, '../../secret.bin', bytes);
      human.send({ type: 'file_end', request: asked.id });
      const done = await human.next('file_done', (m) => m.type === 'file_done' || (m.type === 'error' && m.request));
      expect(done).toMatchObject({ type: 'file_done', request: asked.id, files: [{ name: 'secret.bin', size: bytes.length, sha256: sha(bytes) }] });
      const files = await firstGot();
      expect(files).toEqual([{ name: 'secret.bin', b64: bytes.toString('base64') }]);
      await waitFor('the request is gone', () => human.state?.fileRequest === null);
      const audit = (await api(d.url, `/audit?session_id=${SID}&type=file_uploaded`)).body.events.filter((e: any) => e.actor === 'human');
      expect(audit.map((e: any) => [e.transport, e.detail])).toEqual([['screencast', { name: 'secret.bin', size: bytes.length, sha256: sha(bytes), by: 'human' }]]);

      // Cancel: the input fires `cancel`, nothing is chosen, the request goes away.
      human.click(300, 140);
      const again = await waitFor('a second file request', () => human.state?.fileRequest);
      expect(again.id).not.toBe(asked.id);
      human.send({ type: 'file_cancel', request: again.id });
      await waitFor('cancel reached the page', async () => (await page.evaluate(() => (window as any).cancels)) === 1);
      await waitFor('the request is gone', () => human.state?.fileRequest === null);

      // An answer to a request that is gone changes nothing.
      human.sendFile(again.id, 'late.bin', Buffer.from('late'));
      human.send({ type: 'file_end', request: again.id });
      const refused = await human.next('refusal', (m) => m.type === 'error' && m.request === again.id);
      expect(refused.code).toBe('bad_request'); // nothing is buffered for a request that is gone
      expect((await got()).length).toBe(1);
    } finally {
      await human.close();
    }
  });

  it('a file input in a cross-origin iframe opens no native dialog either (security review: the GTK chooser showed the profile)', async () => {
    await page.goto(`${siteUrl}framed`);
    const frame = await waitFor('the cross-origin frame', async () => page.frames().find((f) => f.url().startsWith('http://localhost:')) ?? null);
    await frame.waitForSelector('#f');
    await frame.click('#f');
    await new Promise((r) => setTimeout(r, 1500)); // a dialog would be mapped by now
    await pageStillOnScreen();
    await page.goto(siteUrl);
  });

  it('a popup\'s file input is intercepted too', async () => {
    const popupP = new Promise<Page>((resolve) => agent.once('targetcreated', async (t) => resolve((await t.page())!)));
    await page.evaluate((u) => void window.open(u, 'p', 'popup,width=600,height=400'), siteUrl);
    const popup = await popupP;
    await popup.waitForSelector('#f');
    const human = await LiveSocket.open(d.url, SID);
    try {
      await waitFor('the human has control', () => human.state?.canControl === true);
      await waitFor('two tabs', () => human.state?.tabs?.length === 2);
      // The daemon's window manager makes the popup fill the screen: its input is then at
      // 100,100 on it. Until it has (a loaded machine), a click can land beside it: click again.
      await waitFor('the popup to fill the screen', () => popup.evaluate(() => window.innerWidth >= 1000));
      let clickedAt = 0;
      const asked = await waitFor('a file request from the popup', () => {
        if (Date.now() - clickedAt > 2000) (human.click(300, 140), (clickedAt = Date.now()));
        return human.state?.fileRequest;
      });
      human.sendFile(asked.id, 'p.txt', Buffer.from('popup bytes'));
      human.send({ type: 'file_end', request: asked.id });
      await human.next('file_done', (m) => m.type === 'file_done');
      const files = await waitFor('the popup read it', async () => (await popup.evaluate(() => (window as any).got)).length && popup.evaluate(() => (window as any).got));
      expect(files[0]).toEqual([{ name: 'p.txt', b64: Buffer.from('popup bytes').toString('base64') }]);
    } finally {
      await human.close();
      await popup.close();
    }
  });
});
