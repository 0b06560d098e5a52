import crypto from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';
import { RfbViewer, colourDistance, freePort, hex, readPicture, vncPasswordFile, vncsnapshot } from '../helpers/vnc.js';
import { Enc, RawRfb } from '../helpers/vnc-raw.js';

/**
 * API.md 6 with real clients against the real daemon: rfb2 and vncsnapshot (TightVNC code:
 * Tight/JPEG, ZRLE) see the session's page; the password picks the session; wrong passwords,
 * foreign networks and garbage are refused without disturbing anyone else; a viewer is view
 * only while an agent is attached (API.md 3.4) and is counted and audited.
 */
let d: RunningDaemon;
let vncPort: number;
const leaks = new LeakTracker();
const viewers: RfbViewer[] = [];
const raws: RawRfb[] = [];
const browsers: Browser[] = [];
const tmp = mkdtempSync(join(tmpdir(), 'handoff-vnc-test-'));

type Quad = [tl: number, tr: number, bl: number, br: number];
const RED: Quad = [0xff0000, 0x00ff00, 0x0000ff, 0xffff00];
const BLUE: Quad = [0x00ffff, 0xff00ff, 0x808080, 0xff8000];
/** Sample points per quadrant, away from the edges and from the pointer (it starts mid-screen). */
const SPOTS: Array<[number, number]> = [
  [200, 150],
  [1080, 150],
  [200, 570],
  [1080, 570],
];

function quadrants([tl, tr, bl, br]: Quad): string {
  const box = (l: number, t: number, c: number) => `<div style="position:absolute;left:${l}px;top:${t}px;width:640px;height:360px;background:${hex(c)}"></div>`;
  return `<!doctype html><body style="margin:0;overflow:hidden">${box(0, 0, tl)}${box(640, 0, tr)}${box(0, 360, bl)}${box(640, 360, br)}</body>`;
}

async function connectAgent(query: string): Promise<{ browser: Browser; page: Page }> {
  const browser = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?auto_close=false&${query}`, defaultViewport: null });
  browsers.push(browser);
  const page = (await browser.pages())[0]!;
  return { browser, page };
}

/** Shows `html` and waits until it has been painted. */
async function show(page: Page, html: string): Promise<void> {
  await page.setContent(html);
  await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
}

/** Creates a VNC-enabled session showing `html`, then lets the agent go (attachment none). */
async function session(id: string, password: string, html: string, extra = ''): Promise<void> {
  const { browser, page } = await connectAgent(`session=${id}&enable_vnc=true&vnc_password=${password}${extra}`);
  await show(page, html);
  leaks.note(d.stateDir);
  await browser.disconnect();
  expect((await api(d.url, `/session/${id}/wait?attachment=none&timeout_ms=10000`)).status).toBe(200);
}

async function viewer(password: string): Promise<RfbViewer> {
  const v = await RfbViewer.connect(vncPort, password);
  viewers.push(v);
  return v;
}

function expectQuadrants(sample: (x: number, y: number) => number, colours: Quad, tolerance: number): void {
  const wrong = SPOTS.flatMap(([x, y], i) =>
    colourDistance(sample(x, y), colours[i]!) <= tolerance ? [] : [`(${x},${y}) is ${hex(sample(x, y))}, want ${hex(colours[i]!)}`],
  );
  expect(wrong).toEqual([]);
}

const audit = async (query: string) => (await api(d.url, `/audit?${query}&limit=1000`)).body.events as Array<Record<string, any>>;
const sessionInfo = async (id: string) => (await api(d.url, `/session/${id}`)).body;

beforeAll(async () => {
  vncPort = await freePort();
  d = await startDaemon({ args: ['--vnc-port', String(vncPort)] });
  await session('red', 'redpass1', quadrants(RED));
  await session('blue', 'bluepass', quadrants(BLUE));
});

afterAll(async () => {
  for (const v of viewers) await v.close();
  for (const r of raws) r.destroy();
  for (const b of browsers) if (b.connected) await b.disconnect();
  if (d && d.proc.exitCode !== null) console.error(`the daemon exited early:\n${d.logs()}`);
  await d?.cleanup();
  rmSync(tmp, { recursive: true, force: true });
  expect(leaks.leftovers()).toEqual([]);
  // vncsnapshot runs are killed on timeout; none may outlive the file.
  expect(pidsNamed('vncsnapshot').filter((p) => p.includes(tmp))).toEqual([]);
});

function pidsNamed(name: string): string[] {
  const out: string[] = [];
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmd.startsWith(name)) out.push(cmd);
    } catch {
      // gone
    }
  }
  return out;
}

describe('rfb2 (Raw)', () => {
  it('the right password gets a full frame of the page: known colours at known points', async () => {
    const v = await viewer('redpass1');
    expect([v.width, v.height]).toEqual([1280, 720]);
    expect(v.title).toBe('handoff red');
    await v.fullFrame();
    expectQuadrants((x, y) => v.pixel(x, y), RED, 0);
    await v.close();
  });

  it('a wrong password is refused with a reason and audited as auth_failed over vnc', async () => {
    const before = (await audit('type=auth_failed')).length;
    await expect(RfbViewer.connect(vncPort, 'wrongpass')).rejects.toBe('authentication failed');
    const failed = await audit('type=auth_failed');
    expect(failed.length - before).toBe(1);
    expect(failed.at(-1)).toMatchObject({ type: 'auth_failed', transport: 'vnc', source_ip: '127.0.0.1' });
  });

  it('two sessions on the same port: each password reaches its own browser', async () => {
    const [a, b] = await Promise.all([viewer('redpass1'), viewer('bluepass')]);
    await Promise.all([a.fullFrame(), b.fullFrame()]);
    expect([a.title, b.title]).toEqual(['handoff red', 'handoff blue']);
    expectQuadrants((x, y) => a.pixel(x, y), RED, 0);
    expectQuadrants((x, y) => b.pixel(x, y), BLUE, 0);
    expect([(await sessionInfo('red')).viewers.vnc, (await sessionInfo('blue')).viewers.vnc]).toEqual([1, 1]);
    await Promise.all([a.close(), b.close()]);
  });
});

describe('vncsnapshot (TightVNC decoder)', () => {
  it.each([
    ['Tight with JPEG', ['-encodings', 'tight', '-quality', '6'], 24],
    ['ZRLE', ['-encodings', 'zrle'], 0],
  ])('%s: the saved picture matches the page', async (_name, args, tolerance) => {
    const out = join(tmp, `snap-${args[1]}.jpg`);
    // vncsnapshot saves a JPEG itself (at -quality for its own file), hence a tolerance for all.
    const r = await vncsnapshot(vncPort, ['-passwd', vncPasswordFile(tmp, 'bluepass'), ...args], out);
    expect(r, r.output).toMatchObject({ code: 0 });
    const pic = await readPicture(out);
    expect([pic.width, pic.height]).toEqual([1280, 720]);
    expectQuadrants((x, y) => pic.mean(x - 10, y - 10, 20, 20), BLUE, Math.max(tolerance, 24));
  });
});

describe('view-only while an agent is attached (API.md 3.4)', () => {
  it('clicks do not reach the page, the name says view only; control comes when the agent leaves; counted and audited', async () => {
    const { browser, page } = await connectAgent('session=watched&enable_vnc=true&vnc_password=watchpw1');
    leaks.note(d.stateDir);
    await show(
      page,
      `<!doctype html><body style="margin:0"><button id="b" style="position:absolute;left:100px;top:100px;width:300px;height:200px">press</button>
       <script>window.clicks = 0; b.addEventListener('click', (e) => { if (e.isTrusted) window.clicks++; });</script></body>`,
    );
    const runId = (await sessionInfo('watched')).run_id;

    const v = await viewer('watchpw1');
    expect(v.title).toBe('handoff watched (view only)');
    await v.fullFrame();
    expect((await sessionInfo('watched')).viewers.vnc).toBe(1);
    expect((await sessionInfo('watched')).attachment).toBe('agent');
    for (let i = 0; i < 3; i++) v.click(250, 200);
    v.tap(0x20);
    await v.sync(); // the daemon has handled (and dropped) all of that before the agent leaves

    // The agent leaves: the viewer takes control, and its next click is the first that counts.
    await browser.disconnect();
    await waitFor('the viewer to take control', async () => (await sessionInfo('watched')).attachment === 'human');
    v.click(250, 200);
    await v.sync();
    await v.close();
    await waitFor('the viewer to be gone', async () => (await sessionInfo('watched')).viewers.vnc === 0);
    expect((await api(d.url, '/session/watched/wait?attachment=none&timeout_ms=10000')).status).toBe(200);

    const again = await connectAgent('session=watched');
    await waitFor('the click', () => again.page.evaluate(() => (window as any).clicks >= 1));
    expect(await again.page.evaluate(() => (window as any).clicks)).toBe(1);
    await again.browser.disconnect();

    const rows = (await audit('session_id=watched')).filter((e) => e.transport === 'vnc');
    expect(rows.map((e) => e.type)).toEqual(['cloud_browser_agent_attach', 'cloud_browser_agent_detach']);
    for (const e of rows) expect(e).toMatchObject({ source_ip: '127.0.0.1', run_id: runId, session_id: 'watched' });
    expect(rows[0]!.detail).toMatchObject({ control: false });
    expect(typeof rows[1]!.detail.duration_ms).toBe('number');
  });
});

describe('hitl_allowed_networks', () => {
  it('a VNC login from outside 10.0.0.0/8 is refused like a wrong password and audited as network_denied', async () => {
    await session('netlock', 'netlock1', quadrants(RED), '&hitl_allowed_networks=10.0.0.0/8');
    // Issue 8 item 6: the right password from a denied network must not be told apart.
    await expect(RfbViewer.connect(vncPort, 'netlock1')).rejects.toBe('authentication failed');
    const denied = await audit('session_id=netlock&type=network_denied');
    expect(denied).toHaveLength(1);
    expect(denied[0]).toMatchObject({ transport: 'vnc', source_ip: '127.0.0.1' });
    expect((await sessionInfo('netlock')).viewers.vnc).toBe(0);
  });
});

describe('garbage on the real port', () => {
  const fds = () => readdirSync(`/proc/${d.proc.pid}/fd`).length;

  async function raw(): Promise<RawRfb> {
    const r = await RawRfb.open(vncPort);
    raws.push(r);
    return r;
  }

  it('random bytes, truncated handshakes, huge lengths and a client that never reads: the daemon survives and a good viewer keeps getting frames', async () => {
    const good = await viewer('redpass1');
    await good.fullFrame();
    const baseline = fds();

    // Random bytes instead of a version.
    const noise = await raw();
    noise.write(crypto.randomBytes(4096));
    await noise.closed;

    // Truncated handshakes: half a version; a version then silence; the challenge, no answer.
    const half = await raw();
    half.write(Buffer.from('RFB 003.0'));
    half.destroy();
    const versionOnly = await raw();
    await versionOnly.read(12);
    versionOnly.write(Buffer.from('RFB 003.008\n'));
    await versionOnly.read(2);
    versionOnly.destroy();
    const noAnswer = await raw();
    await noAnswer.read(12);
    noAnswer.write(Buffer.from('RFB 003.008\n'));
    await noAnswer.read(2);
    noAnswer.write(Buffer.of(2));
    await noAnswer.read(16);
    noAnswer.destroy();

    // Authenticated, then length fields far past any limit, and an unknown message type.
    const hugeEncodings = await RawRfb.connect(vncPort, 'redpass1');
    raws.push(hugeEncodings);
    hugeEncodings.write(Buffer.from([2, 0, 0xff, 0xff]));
    await hugeEncodings.closed;
    const hugeCut = await RawRfb.connect(vncPort, 'redpass1');
    raws.push(hugeCut);
    hugeCut.write(Buffer.from([6, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]));
    await hugeCut.closed;
    const unknown = await RawRfb.connect(vncPort, 'redpass1');
    raws.push(unknown);
    unknown.write(Buffer.from([0xfe, 1, 2, 3]));
    await unknown.closed;

    // A client that asks for frames and never reads them.
    const stuck = await RawRfb.connect(vncPort, 'redpass1');
    raws.push(stuck);
    stuck.socket.pause();
    stuck.setEncodings([Enc.Raw]);
    // Spaced out so each request gets its own 3.7 MB frame, well past the server's write cap.
    for (let i = 0; i < 10; i++) {
      stuck.request(false);
      await new Promise((r) => setTimeout(r, 30));
    }
    expect((await sessionInfo('red')).viewers.vnc).toBe(2);

    // The good viewer is unaffected.
    const before = good.rects;
    good.refresh();
    await good.until('a fresh full frame', (v) => v.rects > before);
    expectQuadrants((x, y) => good.pixel(x, y), RED, 0);
    expect(good.closed).toBe(false);

    stuck.destroy();
    await waitFor('only the good viewer left', async () => (await sessionInfo('red')).viewers.vnc === 1);
    expect(d.proc.exitCode).toBeNull();
    expect((await api(d.url, '/health')).body.ok).toBe(true);
    // Every socket of the abusers is closed again.
    await waitFor(`file descriptors back to ${baseline}`, () => fds() <= baseline);
    await good.close();
    await waitFor('no VNC viewers', async () => (await sessionInfo('red')).viewers.vnc === 0);
  });
});
