/**
 * What the fuzzers feed: every parser of bytes a client (or Chromium) sends, with its one
 * accepted failure path and its memory cap. Seeds are real captures (capture.ts), plus a few
 * hand-made inputs where nothing on the wire carries that format to a recorder (DataChannel
 * input, creation query strings, REST bodies).
 */
import { PassThrough, Readable, Writable } from 'node:stream';
import { loadSeeds, type Rng, type Target } from './engine.js';
import { RfbParser, MAX_CUT_TEXT, type ClientMsg } from '../../src/liveview/vnc/parser.js';
import { parseViewerMessage, MAX_TEXT_BYTES } from '../../src/liveview/screencast/protocol.js';
import { parseSignal, parseInput, PasteAssembler, encodeInput, MAX_PASTE_BYTES } from '../../src/liveview/webrtc/protocol.js';
import { ProtocolError } from '../../src/liveview/viewer-socket.js';
import { NulSplitter, type PipeMessage } from '../../src/cdp/pipe-message.js';
import { CdpPipeMux, type AgentChannel } from '../../src/cdp/pipe-mux.js';
import { parseSessionParams, parseAutoClose, validSessionId } from '../../src/sessions/params.js';
import { LiveLinkSigner } from '../../src/liveview/tokens.js';
import { readJson, type RequestContext } from '../../src/http/server.js';
import { completeHandoff } from '../../src/http/routes/sessions.js';
import { HandoffError } from '../../src/util/errors.js';

const isProtocolError = (e: unknown) => e instanceof ProtocolError;
const isBadRequest = (e: unknown) => e instanceof HandoffError && (e.code === 'bad_request' || e.code === 'not_found');
const never = () => false;
const each = (seeds: Buffer[][]) => seeds.flatMap((s) => s.map((m) => [m]));

/** Re-splits a byte stream at random points (a socket may deliver any split). */
function resplit(chunks: Buffer[], rng: Rng): Buffer[] {
  if (rng.int(2) === 0) return chunks;
  const all = Buffer.concat(chunks);
  const out: Buffer[] = [];
  for (let at = 0; at < all.length; ) {
    const n = 1 + rng.int(rng.int(4) === 0 ? 4 : 64);
    out.push(all.subarray(at, at + n));
    at += n;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// RFB: the client side of a VNC connection, handshake included.

const rfbSeeds = loadSeeds('rfb-');
export const rfb: Target = {
  name: 'rfb parser',
  seeds: rfbSeeds,
  expected: never,
  run(input, rng) {
    let failed = false;
    let after = 0;
    let largest = 0;
    const p = new RfbParser(
      (m: ClientMsg) => {
        if (failed) after++;
        if (m.type === 'cutText' && m.text.length > MAX_CUT_TEXT) after = -1;
      },
      () => (failed = true),
    );
    for (const c of resplit(input, rng)) {
      largest = Math.max(largest, c.length);
      p.push(c);
      // Cap: never more buffered than the largest message (a cut text) plus one chunk.
      const buffered = (p as unknown as { buffered: number }).buffered;
      if (buffered > MAX_CUT_TEXT + 8 + largest) return `parser holds ${buffered} bytes`;
    }
    if (after > 0) return 'messages after fail()';
    if (after < 0) return 'cut text over MAX_CUT_TEXT';
  },
};

// ---------------------------------------------------------------------------------------------
// Viewer sockets: screencast JSON, WebRTC signalling JSON, WebRTC DataChannel input.

export const screencast: Target = {
  name: 'screencast viewer messages',
  seeds: each(loadSeeds('screencast-')),
  expected: isProtocolError,
  run(input, rng) {
    for (const m of input) {
      const msg = parseViewerMessage(m, rng.int(16) === 0);
      if (msg.type === 'paste' && Buffer.byteLength(msg.text) > MAX_TEXT_BYTES) return 'paste over the cap';
      for (const v of Object.values(msg)) if (typeof v === 'number' && !Number.isFinite(v)) return 'a number that is not finite';
    }
  },
};

export const webrtcSignal: Target = {
  name: 'webrtc signalling messages',
  seeds: each(loadSeeds('webrtc-')),
  expected: isProtocolError,
  run(input, rng) {
    for (const m of input) parseSignal(m, rng.int(16) === 0);
  },
};

const pasteSeed = encodeInput.paste('h\u00e9llo \u{1f600} '.repeat(3000));
export const webrtcInput: Target = {
  name: 'webrtc datachannel input',
  seeds: [[encodeInput.pointer(10, 20, 1)], [encodeInput.wheel(5, 5, -3, 2)], [encodeInput.key(0xff0d, true)], pasteSeed, [encodeInput.paste('x')[0]!, encodeInput.key(0x61, false)]],
  expected: isProtocolError,
  run(input) {
    const paste = new PasteAssembler();
    let total = 0;
    for (const m of input) {
      const msg = parseInput(m);
      if (msg.type !== 'paste') continue;
      total += msg.bytes.length;
      const text = paste.push(msg.last, msg.bytes);
      if (text !== null && total > MAX_PASTE_BYTES) return 'paste over MAX_PASTE_BYTES accepted';
      if (text !== null) total = 0;
    }
  },
};

// ---------------------------------------------------------------------------------------------
// CDP: what Chromium writes on the pipe (splitter, routing) and what an agent sends.

const SID = 'SEEDSESSION0123456789ABCDEF';
/** The captures are the frames as the agent saw them: the pipe carries them with the session id. */
function onPipe(frames: Buffer[]): Buffer[] {
  return frames.map((f, i) => {
    const s = f.toString('utf8');
    return Buffer.from((i % 3 === 2 || !s.endsWith('}') ? s : `${s.slice(0, -1)},"sessionId":"${SID}"}`) + '\0');
  });
}
/** Windows of 8 consecutive messages: whole captures make each input slow for little gain. */
const windows = (frames: Buffer[]) => Array.from({ length: Math.ceil(frames.length / 8) }, (_, i) => frames.slice(i * 8, i * 8 + 8));
const pipeSeeds = loadSeeds('cdp-puppeteer-chromium').concat(loadSeeds('cdp-playwright-chromium')).map(onPipe).flatMap(windows);
const MUX_CAP = 64 * 1024;

/** A mux on fake pipes with a root command and an agent (owning SID) waiting for answers. */
function muxWithAgent(): { mux: CdpPipeMux; agent: AgentChannel; out: Buffer[] } {
  // Commands to the browser are dropped as written (nobody reads them; kept, they would pile up).
  const mux = new CdpPipeMux(new Writable({ write: (_c, _e, cb) => cb() }), new PassThrough());
  const route = (m: PipeMessage) => (mux as unknown as { route(m: PipeMessage): void }).route(m);
  mux.send('Browser.getVersion').catch(() => {});
  mux.send('Target.setDiscoverTargets', { discover: true }).catch(() => {});
  let agent: AgentChannel | null = null;
  mux.openAgent().then((a) => (agent = a), () => {});
  const split = new NulSplitter(1 << 20, route, () => {});
  split.push(Buffer.from(`{"id":3,"result":{"sessionId":"${SID}"}}\0`));
  // openAgent resolves on a microtask; the channel is owned at once, so take it from the owners.
  const owners = (mux as unknown as { owners: Map<string, AgentChannel> }).owners;
  agent = owners.get(SID)!;
  const out: Buffer[] = [];
  agent.onMessage = (d) => void out.push(Buffer.from(d as Buffer));
  agent.send({ id: 1, method: 'Page.navigate', params: { url: 'about:blank' } });
  agent.send({ id: 2, method: 'Target.attachToTarget', params: { targetId: 'T', flatten: true } });
  return { mux, agent, out };
}

let pipeMux: ReturnType<typeof muxWithAgent> | null = null;
let pipeRuns = 0;
export const cdpPipe: Target = {
  name: 'cdp pipe splitter and router',
  seeds: pipeSeeds,
  expected: never,
  run(input, rng) {
    // One mux for many inputs, as for agent commands; a fresh one now and then.
    if (!pipeMux || ++pipeRuns % 2000 === 0) pipeMux = muxWithAgent();
    const { mux, out } = pipeMux;
    out.length = 0;
    const route = (m: PipeMessage) => (mux as unknown as { route(m: PipeMessage): void }).route(m);
    const split = new NulSplitter(MUX_CAP, route, (head) => (mux as unknown as { oversize(h: string): void }).oversize(head));
    for (const c of resplit(input, rng)) {
      split.push(c);
      const held = (split as unknown as { size: number; overflowed: boolean });
      if (!held.overflowed && held.size > MUX_CAP) return `splitter holds ${held.size} bytes`;
    }
    // What Chromium wrote reaches the agent as it was (garbage in, garbage out): no check on `out`.
    void out;
  },
};

let agentMux: ReturnType<typeof muxWithAgent> | null = null;
let agentRuns = 0;
export const cdpAgent: Target = {
  name: 'cdp agent commands',
  seeds: each(loadSeeds('cdp-puppeteer-client').concat(loadSeeds('cdp-playwright-client'))),
  expected: never,
  run(input) {
    // One mux for many inputs (setting one up costs more than an input); a fresh one now and then.
    if (!agentMux || ++agentRuns % 2000 === 0) agentMux = muxWithAgent();
    const { agent, out } = agentMux;
    out.length = 0;
    for (const m of input) {
      // As agent-socket.ts does it: JSON.parse failures are answered, then the command is routed.
      let cmd: unknown;
      try {
        cmd = JSON.parse(m.toString('utf8'));
      } catch {
        continue;
      }
      agent.send(cmd);
    }
    for (const o of out) JSON.parse(o.toString('utf8'));
  },
};

// ---------------------------------------------------------------------------------------------
// Session parameters (the agent's connect URL), REST bodies, live-link tokens.

export const params: Target = {
  name: 'session parameters',
  seeds: [
    'session=seed&auto_close=false&enable_vnc=true&vnc_password=seedpass&enable_rtc=true&rtc_password=seedpass',
    'session=a.b_c-1&width=1920&height=1080&timeout=60&debug=1&debug_port=true',
    'hitl_allowed_networks=10.0.0.0/8,192.168.1.0/24,::1/128&enable_rtc=1&rtc_username=u&rtc_password=p',
    'width=320&height=240&timeout=3600&auto_close=0&vnc_password=%C3%A9t%C3%A9%20pass',
  ].map((s) => [Buffer.from(s)]),
  expected: isBadRequest,
  run(input) {
    for (const c of input) {
      const q = new URLSearchParams(c.toString('latin1'));
      parseAutoClose(q, true);
      const id = q.get('session');
      if (id !== null) validSessionId(id);
      const p = parseSessionParams(q);
      if (p.width < 320 || p.width > 3840 || p.height < 240 || p.height > 2160) return 'size out of range accepted';
      if (p.vncPassword !== null && p.vncPassword.length > 1024) return 'long vnc password accepted';
    }
  },
};

const fakeRes = () => ({ writeHead: () => {}, end: () => {} }) as unknown as import('node:http').ServerResponse;
export const restBody: Target = {
  name: 'rest bodies',
  seeds: ['{"outcome":"done"}', '{"outcome":"failed"}', '{}', '{"reason":"captcha","timeout_ms":60000,"hold_agent_input":false}', '[1,2]', '"x"'].map((s) => [Buffer.from(s)]),
  expected: isBadRequest,
  async run(input, rng) {
    const headers = { 'content-type': rng.int(8) ? 'application/json' : 'text/plain', 'content-length': String(input.reduce((n, c) => n + c.length, 0)) };
    const req = Object.assign(Readable.from(input), { headers });
    const ctx = { req } as unknown as RequestContext;
    let completed: unknown;
    const session = { handoff: rng.int(4) ? {} : null, completeHandoff: (o: unknown) => (completed = o) };
    await completeHandoff(session as never, ctx, fakeRes(), 'rest');
    if (completed !== 'done' && completed !== 'failed') return `handoff completed with ${String(completed)}`;
    const again = Object.assign(Readable.from(input), { headers });
    await readJson({ req: again } as unknown as RequestContext);
  },
};

const signer = new LiveLinkSigner(Buffer.alloc(32, 7));
const mac = (payload: string) => (signer as unknown as { mac(p: string): string }).mac(payload);
const tokenSeeds = [
  signer.sign({ sessionId: 'seed', runId: 'r1', kind: 'control', issuedAt: 1764490000000, id: 'abc', generation: 0, singleUse: false }),
  signer.sign({ sessionId: 'a.b_c', runId: 'r2', kind: 'view', issuedAt: 1, id: 'x', generation: 3, singleUse: true }),
];
export const tokens: Target = {
  name: 'live-link tokens',
  seeds: tokenSeeds.map((t) => [Buffer.from(t)]).concat(tokenSeeds.map((t) => [Buffer.from(Buffer.from(t.split('.')[0]!, 'base64url'))])),
  expected: never,
  run(input, rng) {
    for (const c of input) {
      // Half the time the bytes are the signed payload (past the MAC, into the JSON checks).
      const token = rng.int(2) ? c.toString('latin1') : `${c.toString('base64url')}.${mac(c.toString('base64url'))}`;
      const link = signer.verify(token);
      if (!link) continue;
      if (typeof link.sessionId !== 'string' || (link.kind !== 'control' && link.kind !== 'view') || !Number.isSafeInteger(link.generation)) return 'a malformed link verified';
    }
  },
};

export const TARGETS: Target[] = [rfb, screencast, webrtcSignal, webrtcInput, cdpPipe, cdpAgent, params, restBody, tokens];
