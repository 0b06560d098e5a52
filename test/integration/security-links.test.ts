import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';
import WebSocket from 'ws';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, cdpCall, closed, rawRequest, tryWs, waitFor, type ApiResponse } from '../helpers/client.js';
import { waitState } from '../helpers/viewer.js';
import { LiveLinkSigner, type LinkKind } from '../../src/liveview/tokens.js';

/**
 * Issue 8 items 7 and 8: no session id names a parent dir; a view link cannot end a handoff;
 * a link is opened only by a viewer socket; links can be revoked or single-use.
 */
describe('session ids and live links', () => {
  let daemon: RunningDaemon;
  let viewers: Browser;
  const sockets: WebSocket[] = [];

  beforeAll(async () => {
    daemon = await startDaemon();
    viewers = await puppeteer.launch({ executablePath: '/usr/lib/chromium/chromium', headless: true, args: ['--no-sandbox'] });
    // Sessions: `links` (nobody attached), `vl` (an agent attached), `nw` (humans only from 127.0.0.2).
    for (const q of ['session=links', 'session=vl&enable_rtc=true&rtc_password=pw-12345', 'session=nw&hitl_allowed_networks=127.0.0.2/32']) {
      const r = await api(daemon.url, `/devtools/browser?keep_alive=600000&${q}`, { method: 'POST' });
      expect(r.status).toBe(200);
    }
  });

  afterAll(async () => {
    for (const ws of sockets) ws.terminate();
    await viewers?.close();
    await daemon?.cleanup();
  });

  const json = { 'content-type': 'application/json' };
  const token = (url: string) => new URL(url).pathname.split('/')[2]!;
  const link = async (id: string, query = '') => {
    const r = await api(daemon.url, `/session/${id}/live${query}`);
    expect(r.status).toBe(200);
    return token(r.body.url);
  };
  /** A viewer socket that records its JSON messages. */
  const viewer = async (tok: string, transport = 'screencast') => {
    // Listening from the start: the first messages may come with the upgrade's answer.
    const messages: any[] = [];
    const onSocket = (ws: WebSocket) => ws.on('message', (d, binary) => !binary && messages.push(JSON.parse(d.toString())));
    const out = await tryWs(`${daemon.wsUrl}/live/${tok}/${transport}`, {}, onSocket);
    if (out.kind !== 'open') return { out, messages };
    sockets.push(out.ws);
    return { out, ws: out.ws, messages };
  };
  /** A token signed with the daemon's key, issued `ageMs` ago (to reach the TTL without waiting 5 minutes). */
  const forged = async (id: string, ageMs: number, kind: LinkKind = 'control') => {
    const s = (await api(daemon.url, `/session/${id}`)).body;
    const signer = new LiveLinkSigner(readFileSync(join(daemon.stateDir, 'live-link.key')));
    return signer.sign({ sessionId: id, runId: s.run_id, kind, issuedAt: Date.now() - ageMs, id: `t${Math.random()}`, generation: 0, singleUse: false });
  };
  const stateDirSecrets = () => [readFileSync(join(daemon.stateDir, 'live-link.key')).toString('base64'), 'live-link.key', 'handoff.db', 'handoff.pid'];

  describe('session ids that are only dots', () => {
    it('are 400 bad_request on every entry point', async () => {
      for (const id of ['.', '..', '...', '%2E%2E', '.%2e']) {
        const create = await rawRequest(daemon.port, 'POST', `/devtools/browser?session=${id}`);
        expect(create.status, `POST ?session=${id}`).toBe(400);
        expect(create.body.error.code).toBe('bad_request');
        const list = await rawRequest(daemon.port, 'GET', `/json/list?session=${id}`);
        expect(list.status, `/json/list?session=${id}`).toBe(400);
        const ws = await tryWs(`${daemon.wsUrl}/?session=${id}`);
        expect(ws.kind === 'refused' && ws.status, `ws ?session=${id}`).toBe(400);
        if (ws.kind === 'open') ws.ws.terminate();
        expect(ws.kind === 'refused' && ws.body.error.code).toBe('bad_request');
      }
      // (A WebSocket URL's `..` and `%2E%2E` segments are resolved by the client before sending.)
      for (const path of ['/devtools/browser/...', '/devtools/browser/....']) {
        const ws = await tryWs(`${daemon.wsUrl}${path}`);
        expect(ws.kind === 'refused' && ws.status, path).toBe(400);
      }
      for (const path of ['/session/...', '/session/.../downloads', '/session/.../live', '/devtools/browser/.../json/list']) {
        const r = await rawRequest(daemon.port, 'GET', path);
        expect(r.status, path).toBe(400);
        expect(r.body.error.code).toBe('bad_request');
      }
      // None of them exists.
      expect((await api(daemon.url, '/sessions')).body.sessions.map((s: any) => s.session_id).sort()).toEqual(['links', 'nw', 'vl']);
    });

    it('cannot list or fetch the state dir, live-link.key or handoff.db', async () => {
      const paths = [
        '/session/../downloads',
        '/session/%2E%2E/downloads',
        '/session/%2e%2e/downloads/live-link.key',
        '/session/.%2E/downloads/handoff.db',
        '/session/..%2Fdownloads',
        '/session/links/downloads/..%2F..%2Flive-link.key',
        '/session/links/downloads/%2E%2E',
        '/session/.../downloads/live-link.key',
        '/json/list?session=..',
      ];
      const answers: ApiResponse[] = [];
      for (const p of paths) answers.push(await rawRequest(daemon.port, 'GET', p));
      // The way in before: a session named `..` (its downloads dir was the state dir) and a
      // live link to it from Chrome's discovery list.
      await rawRequest(daemon.port, 'POST', '/devtools/browser?session=..');
      const list = await rawRequest(daemon.port, 'GET', '/json/list?session=..');
      for (const t of Array.isArray(list.body) ? list.body : []) {
        const tok = token(t.devtoolsFrontendUrl);
        answers.push(await rawRequest(daemon.port, 'GET', `/live/${tok}/downloads`));
        answers.push(await rawRequest(daemon.port, 'GET', `/live/${tok}/downloads/live-link.key`));
        answers.push(await rawRequest(daemon.port, 'GET', `/live/${tok}/downloads/handoff.db`));
      }
      answers.forEach((a, i) => {
        expect(a.status, paths[i] ?? 'live link of a `..` session').toBeGreaterThanOrEqual(400);
        const text = typeof a.body === 'string' ? a.body : JSON.stringify(a.body);
        for (const secret of stateDirSecrets()) expect(text).not.toContain(secret);
      });
      expect(list.status).toBe(400);
    });
  });

  describe('view links', () => {
    let agent: WebSocket;

    beforeAll(async () => {
      const out = await tryWs(`${daemon.wsUrl}/devtools/browser/vl`);
      if (out.kind !== 'open') throw new Error(`agent could not attach: ${JSON.stringify(out)}`);
      agent = out.ws;
      sockets.push(agent);
    });

    const handoffActive = async () => (await api(daemon.url, '/session/vl')).body.handoff;

    it('cannot complete, fail or cancel a handoff over REST: 403 forbidden', async () => {
      const h = await api(daemon.url, '/session/vl/handoff', { method: 'POST', headers: json, body: JSON.stringify({ reason: 'solve the captcha' }) });
      expect(h.status).toBe(200);
      const view = await link('vl', '?kind=view');
      for (const outcome of ['done', 'failed']) {
        const r = await api(daemon.url, `/live/${view}/handoff`, { method: 'POST', headers: json, body: JSON.stringify({ outcome }) });
        expect(r.status, outcome).toBe(403);
        expect(r.body.error.code).toBe('forbidden');
        expect((await handoffActive())?.id).toBe(h.body.handoffId);
      }
      // The control link of that handoff can.
      const ok = await api(daemon.url, `/live/${token(h.body.liveUrl)}/handoff`, { method: 'POST', headers: json, body: JSON.stringify({ outcome: 'done' }) });
      expect(ok.status).toBe(200);
      expect(await handoffActive()).toBeNull();
    });

    it('cannot end a handoff in-band on the screencast socket, even while it has control', async () => {
      const h = await api(daemon.url, '/session/vl/handoff', { method: 'POST', headers: json, body: JSON.stringify({ reason: 'approve the payment' }) });
      expect(h.status).toBe(200);
      const v = await viewer(await link('vl', '?kind=view'));
      expect(v.out.kind).toBe('open');
      // During a handoff every human viewer gets input, the view link's too.
      await waitFor('control for the view-link viewer', () => v.messages.find((m) => m.type === 'state' && m.canControl && m.handoff));
      v.ws!.send(JSON.stringify({ type: 'handoff', outcome: 'done' }));
      const refusal = await waitFor('the refusal', () => v.messages.find((m) => m.type === 'error'));
      expect(refusal).toMatchObject({ type: 'error', code: 'forbidden' });
      expect((await handoffActive())?.id).toBe(h.body.handoffId);
      expect(v.ws!.readyState).toBe(WebSocket.OPEN);

      // A control link's viewer ends it the same way.
      const c = await viewer(token(h.body.liveUrl));
      await waitFor('control link state', () => c.messages.find((m) => m.type === 'state'));
      c.ws!.send(JSON.stringify({ type: 'handoff', outcome: 'failed' }));
      await waitFor('the handoff to end', async () => (await handoffActive()) === null);
      const events = (await api(daemon.url, '/audit?session_id=vl&type=handoff_completed')).body.events;
      expect(events.at(-1).detail.outcome).toBe('failed');
      v.ws!.close();
      c.ws!.close();
    });

    it('cannot end a handoff in-band on the WebRTC signalling socket', async () => {
      const h = await api(daemon.url, '/session/vl/handoff', { method: 'POST', headers: json, body: JSON.stringify({ reason: 'pick a seat' }) });
      expect(h.status).toBe(200);
      // No media is needed to send it: hello, then the answer buttons' message.
      const r = await viewer(await link('vl', '?kind=view'), 'webrtc');
      expect(r.out.kind).toBe('open');
      r.ws!.send(JSON.stringify({ type: 'hello', password: 'pw-12345', codecs: ['H264', 'VP8'] }));
      r.ws!.send(JSON.stringify({ type: 'handoff', outcome: 'failed' }));
      const rtcRefusal = await waitFor('the WebRTC refusal', () => r.messages.find((m) => m.type === 'error'));
      expect(rtcRefusal).toMatchObject({ type: 'error', code: 'forbidden' });
      expect(r.messages.some((m) => m.type === 'offer')).toBe(true);
      expect((await handoffActive())?.id).toBe(h.body.handoffId);
      r.ws!.close();
      const cancel = await api(daemon.url, '/session/vl/handoff', { method: 'DELETE' });
      expect(cancel.status).toBe(200);
    });

    it('Handoff.request {singleUse: true} mints a link for one viewer', async () => {
      const r = await cdpCall(agent, 1, 'Handoff.request', { reason: 'one person only', singleUse: true });
      const first = await viewer(token(r.liveUrl));
      expect(first.out.kind).toBe('open');
      const second = await viewer(token(r.liveUrl));
      expect(second.out.kind === 'refused' && [second.out.status, second.out.body.error.code]).toEqual([410, 'link_expired']);
      await expect(cdpCall(agent, 2, 'Handoff.request', { reason: 'x', singleUse: 'yes' })).rejects.toThrow(/singleUse/);
      await cdpCall(agent, 3, 'Handoff.cancel');
      first.ws!.close();
    });
  });

  describe('a link is opened by a viewer socket only', () => {
    // The daemon's TTL is 300 s: tokens issued 290 s ago, then the last 10 s waited out.
    const ttl = 300_000;
    const age = ttl - 10_000;
    let issued: number;
    let looked: string; // page, HEAD, a preview bot, /info and downloads only
    let used: string; // a viewer socket
    let denied: string; // /info, page and socket from a denied network

    it('before the TTL: the page, HEAD, /info and downloads answer; a denied network is refused', async () => {
      issued = Date.now() - age;
      [looked, used, denied] = await Promise.all([forged('links', age), forged('links', age), forged('nw', age)]);
      for (const method of ['GET', 'HEAD']) expect((await rawRequest(daemon.port, method, `/live/${looked}`)).status, method).toBe(200);
      expect((await rawRequest(daemon.port, 'GET', `/live/${looked}`, { 'user-agent': 'Slackbot-LinkExpanding 1.0' })).status).toBe(200);
      expect((await api(daemon.url, `/live/${looked}/info`)).status).toBe(200);
      expect((await api(daemon.url, `/live/${looked}/downloads`)).status).toBe(200);

      const v = await viewer(used);
      expect(v.out.kind).toBe('open');
      v.ws!.close();

      expect((await api(daemon.url, `/live/${denied}/info`)).status).toBe(403);
      expect((await rawRequest(daemon.port, 'GET', `/live/${denied}`)).status).toBe(403);
      const deniedWs = await tryWs(`${daemon.wsUrl}/live/${denied}/screencast`);
      expect(deniedWs.kind === 'refused' && deniedWs.status).toBe(403);
      await new Promise((r) => setTimeout(r, Math.max(0, issued + ttl + 500 - Date.now())));
    }, 60_000);

    it('past the TTL, a link that was only looked at has expired', async () => {
      const info = await api(daemon.url, `/live/${looked}/info`);
      expect([info.status, info.body.error?.code]).toEqual([410, 'link_expired']);
      expect((await viewer(looked)).out.kind).toBe('refused');
    });

    it('past the TTL, a link asked for from a denied network has expired for the allowed one', async () => {
      expect((await fromAddress('127.0.0.2', daemon.port, `/live/${denied}/info`)).status).toBe(410);
    });

    it('past the TTL, the link a viewer socket connected on still works', async () => {
      expect((await api(daemon.url, `/live/${used}/info`)).status).toBe(200);
      const again = await viewer(used);
      expect(again.out.kind).toBe('open');
      again.ws!.close();
    });
  });

  it('?single_use=true serves one viewer; the page then shows the used link as expired', async () => {
    // Two viewers at once: exactly one gets in.
    const race = await link('links', '?single_use=true');
    const racers = await Promise.all([viewer(race), viewer(race)]);
    expect(racers.map((r) => r.out.kind).sort()).toEqual(['open', 'refused']);
    for (const r of racers) r.ws?.close();

    const tok = await link('links', '?single_use=true&kind=view');
    expect((await rawRequest(daemon.port, 'GET', `/live/${tok}`)).status).toBe(200);
    expect((await api(daemon.url, `/live/${tok}/info`)).status).toBe(200);
    const first = await viewer(tok);
    expect(first.out.kind).toBe('open');
    const others = await Promise.all([viewer(tok), viewer(tok), viewer(tok)]);
    for (const next of others) expect(next.out.kind === 'refused' && [next.out.status, next.out.body.error.code]).toEqual([410, 'link_expired']);
    // Its one viewer's page keeps working while it is there.
    expect((await api(daemon.url, `/live/${tok}/info`)).status).toBe(200);
    const gone = closed(first.ws!);
    first.ws!.close();
    await gone;
    await waitFor('the used link to answer 410', async () => (await api(daemon.url, `/live/${tok}/info`)).status === 410);
    const page = await viewers.newPage();
    const res = await page.goto(`${daemon.url}/live/${tok}`);
    expect(res!.status()).toBe(410);
    expect(await waitState(page, ['expired'])).toBe('expired');
    await page.close();
    const bad = await api(daemon.url, '/session/links/live?single_use=maybe');
    expect(bad.status).toBe(400);
  });

  it('a made-up link says the link is not valid, not that the session ended', async () => {
    const made = await forged('links', 0);
    const fake = `${made.split('.')[0]}.${'A'.repeat(43)}`;
    for (const tok of [fake, 'nonsense', 'a.b']) {
      const info = await api(daemon.url, `/live/${tok}/info`);
      expect([info.status, info.body.error.code]).toEqual([404, 'not_found']);
      expect(info.body.error.message).toMatch(/not valid/);
    }
    const page = await viewers.newPage();
    await page.goto(`${daemon.url}/live/${fake}`);
    expect(await waitState(page, ['error', 'ended'])).toBe('error');
    expect(await page.$eval('.hk', (el) => el.textContent)).toMatch(/not valid/);
    await page.close();
  });

  it('DELETE /session/ID/live revokes every link so far: open viewers close, new ones are refused, later links work', async () => {
    const before = await link('links');
    const beforeView = await link('links', '?kind=view');
    const v = await viewer(before);
    const w = await viewer(beforeView);
    expect([v.out.kind, w.out.kind]).toEqual(['open', 'open']);
    await waitFor('the viewers to join', async () => (await api(daemon.url, '/session/links')).body.viewers.screencast === 2);
    const shutV = closed(v.ws!);
    const shutW = closed(w.ws!);

    const r = await api(daemon.url, '/session/links/live', { method: 'DELETE' });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ revoked: true });
    expect((await shutV).code).toBe(4404);
    expect((await shutW).code).toBe(4404);
    await waitFor('the viewers to leave', async () => (await api(daemon.url, '/session/links')).body.viewers.screencast === 0);

    for (const tok of [before, beforeView]) {
      const again = await viewer(tok);
      expect(again.out.kind === 'refused' && [again.out.status, again.out.body.error.code]).toEqual([404, 'not_found']);
      const info = await api(daemon.url, `/live/${tok}/info`);
      expect([info.status, info.body.error.code]).toEqual([404, 'not_found']);
      expect((await rawRequest(daemon.port, 'GET', `/live/${tok}`)).status).toBe(404);
      expect((await api(daemon.url, `/live/${tok}/downloads`)).status).toBe(404);
    }
    const page = await viewers.newPage();
    await page.goto(`${daemon.url}/live/${before}`);
    expect(await waitState(page, ['error', 'ended'])).toBe('error');
    await page.close();

    const after = await viewer(await link('links'));
    expect(after.out.kind).toBe('open');
    after.ws!.close();

    const audit = (await api(daemon.url, '/audit?session_id=links&type=live_url_revoked')).body.events;
    expect(audit).toHaveLength(1);
    expect(audit[0].detail.viewers_closed).toBe(2);
    expect((await api(daemon.url, '/session/nope/live', { method: 'DELETE' })).status).toBe(404);
  });
});

describe('the live link key file', () => {
  it('a short or empty key refuses to start, saying why; a key others can read is made 0600', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'handoff-test-key-'));
    try {
      const key = join(dir, 'live-link.key');
      for (const bytes of [0, 10]) {
        writeFileSync(key, Buffer.alloc(bytes, 7), { mode: 0o600 });
        const started = await startDaemon({ stateDir: dir }).catch((e: Error) => e);
        if (!(started instanceof Error)) await started.stop(); // (the old code started: no leak)
        expect(String(started)).toMatch(new RegExp(`live link key .*live-link.key is ${bytes} bytes; it must be 32`));
        expect(readFileSync(key).length).toBe(bytes);
      }
      writeFileSync(key, Buffer.alloc(32, 7));
      chmodSync(key, 0o644);
      const d = await startDaemon({ stateDir: dir });
      try {
        expect(statSync(key).mode & 0o777).toBe(0o600);
        expect(d.logs()).toMatch(/readable by others/);
        expect(d.logs()).not.toContain(Buffer.alloc(32, 7).toString('base64'));
      } finally {
        await d.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** GET from a given loopback source address (127.0.0.0/8 is all local on Linux). */
function fromAddress(localAddress: string, port: number, path: string): Promise<{ status: number }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, localAddress }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
    });
    req.on('error', reject);
    req.end();
  });
}

