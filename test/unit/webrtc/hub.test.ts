/**
 * The WebRtcHub's signalling up to the offer, with a fake socket: everything that must happen
 * before any media (credentials, places, join) and the refusals. No ports, no processes: every
 * case here ends before a peer connection or an encoder would exist.
 */
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { WebSocket } from 'ws';
import { WebRtcHub, type WebRtcOptions } from '../../../src/liveview/webrtc/hub.js';
import type { ViewerHandle, ViewerSession, ViewerState } from '../../../src/liveview/types.js';
import type { FrameSource, InputSink } from '../../../src/display/types.js';
import { HandoffError } from '../../../src/util/errors.js';
import { silentLogger } from '../../../src/util/logger.js';

class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  sent: string[] = [];
  closeCode?: number;
  send(data: string, cb?: () => void): void {
    this.sent.push(data);
    cb?.();
  }
  close(code: number): void {
    if (this.readyState !== 1) return;
    this.closeCode = code;
    this.readyState = 3;
    queueMicrotask(() => this.emit('close', code));
  }
  terminate(): void {
    this.close(1006);
  }
  /** What the viewer would send. */
  say(m: unknown): void {
    this.emit('message', Buffer.from(typeof m === 'string' ? m : JSON.stringify(m)), false);
  }
  messages(): any[] {
    return this.sent.map((s) => JSON.parse(s));
  }
}

const session: ViewerSession = {
  sessionId: 's',
  runId: 'r',
  framebuffer: { width: 640, height: 360, subscribe: () => { throw new Error('not in unit tests'); } } as FrameSource,
  input: {} as InputSink,
  join: () => { throw new Error('use the join callback'); },
  viewerState: (): ViewerState => ({ attachment: 'none', handoff: null, viewers: { screencast: 0, webrtc: 0, vnc: 0 }, downloads: 0 }),
  onViewerStateChange: () => () => {},
};

function hub(extra: Partial<WebRtcOptions> = {}) {
  const authFailed: string[] = [];
  const processes: unknown[] = [];
  const h = new WebRtcHub(session, {
    display: { name: ':99', authFile: '/nonexistent' },
    width: 640,
    height: 360,
    credentials: { username: 'alice', password: 'pw-1234' },
    host: '127.0.0.1',
    portRange: null,
    iceServers: [],
    onAuthFailed: (ip) => authFailed.push(ip),
    onEncoderProcess: (codec, pid) => processes.push([codec, pid]),
    logger: silentLogger,
    ...extra,
  });
  return { h, authFailed, processes };
}

const flush = () => new Promise((r) => setTimeout(r, 0));

function connect(h: WebRtcHub, join: () => ViewerHandle) {
  const ws = new FakeSocket();
  h.addViewer(ws as unknown as WebSocket, '192.0.2.9', join);
  return ws;
}

const noJoin = () => {
  throw new Error('join must not be called');
};

afterEach(() => {
  vi.useRealTimers();
});

describe('before any media', () => {
  it('wrong credentials: unauthorized, close 4001, reported, nothing joined or started', async () => {
    const { h, authFailed, processes } = hub();
    const ws = connect(h, noJoin);
    ws.say({ type: 'hello', username: 'alice', password: 'nope', codecs: ['H264'] });
    await flush();
    expect(ws.messages()).toEqual([{ type: 'error', code: 'unauthorized', message: 'wrong rtc_username or rtc_password' }]);
    expect(ws.closeCode).toBe(4001);
    expect(authFailed).toEqual(['192.0.2.9']);
    expect(processes).toEqual([]);
    expect(h.viewerCount).toBe(0);
    await h.close();
  });

  it('wrong credentials lock the source out: then even the right ones are refused unchecked (4029)', async () => {
    const { h, authFailed } = hub();
    for (let i = 0; i < 4; i++) {
      const ws = connect(h, noJoin);
      ws.say({ type: 'hello', username: 'alice', password: `guess-${i}`, codecs: ['H264'] });
      await flush();
      expect(ws.closeCode).toBe(4001);
    }
    expect(authFailed).toHaveLength(4);
    const ws = connect(h, noJoin);
    ws.say({ type: 'hello', username: 'alice', password: 'pw-1234', codecs: ['H264'] });
    await flush();
    expect(ws.messages()).toEqual([{ type: 'error', code: 'too_many_requests', message: expect.stringMatching(/too many failed attempts from your address/) }]);
    expect(ws.closeCode).toBe(4029);
    expect(authFailed).toHaveLength(4);
    expect(h.throttle.lockedForMs('192.0.2.9')).toBeGreaterThan(0);
    await h.close();
  });

  it('a missing username when one is set is wrong too', async () => {
    const { h, authFailed } = hub();
    const ws = connect(h, noJoin);
    ws.say({ type: 'hello', password: 'pw-1234', codecs: ['H264'] });
    await flush();
    expect(ws.closeCode).toBe(4001);
    expect(authFailed).toHaveLength(1);
    await h.close();
  });

  it('the first message must be hello', async () => {
    const { h } = hub();
    const ws = connect(h, noJoin);
    ws.say({ type: 'answer', sdp: 'v=0' });
    await flush();
    expect(ws.messages()[0]).toMatchObject({ type: 'error', code: 'bad_request' });
    expect(ws.closeCode).toBe(1008);
    await h.close();
  });

  it('no common codec is a bad request, before join', async () => {
    const { h } = hub({ credentials: { username: null, password: '' } });
    const ws = connect(h, noJoin);
    ws.say({ type: 'hello', codecs: ['AV1'] });
    await flush();
    expect(ws.messages()[0]).toMatchObject({ type: 'error', code: 'bad_request' });
    expect(ws.closeCode).toBe(1008);
    await h.close();
  });

  it('no place left: too_many_viewers, close 4029, before join', async () => {
    const { h } = hub({ maxViewers: 0 });
    const ws = connect(h, noJoin);
    ws.say({ type: 'hello', username: 'alice', password: 'pw-1234', codecs: ['H264'] });
    await flush();
    expect(ws.messages()).toEqual([{ type: 'error', code: 'too_many_viewers', message: 'this session already has 0 WebRTC viewers' }]);
    expect(ws.closeCode).toBe(4029);
    await h.close();
  });

  it('a view link cannot take the last 2 places, kept for control links (M4): too_many_viewers before join', async () => {
    const { h } = hub({ maxViewers: 2 });
    const ws = new FakeSocket();
    h.addViewer(ws as unknown as WebSocket, '192.0.2.9', noJoin, 'view');
    ws.say({ type: 'hello', username: 'alice', password: 'pw-1234', codecs: ['H264'] });
    await flush();
    expect(ws.messages()).toEqual([
      { type: 'error', code: 'too_many_viewers', message: 'this session already has 0 WebRTC viewers (the last 2 of 2 places are kept for control links)' },
    ]);
    expect(ws.closeCode).toBe(4029);
    expect(h.viewerCount).toBe(0);
    await h.close();
  });

  it('join refusing the network: network_not_allowed, close 4003, the place given back', async () => {
    const { h, processes } = hub({ maxViewers: 1 });
    const ws = connect(h, () => {
      throw new HandoffError('network_not_allowed', 'your network may not use this session');
    });
    ws.say({ type: 'hello', username: 'alice', password: 'pw-1234', codecs: ['VP8'] });
    await flush();
    expect(ws.messages()).toEqual([{ type: 'error', code: 'network_not_allowed', message: 'your network may not use this session' }]);
    expect(ws.closeCode).toBe(4003);
    expect(h.viewerCount).toBe(0);
    expect(processes).toEqual([]);
    await h.close();
  });

  it('a viewer that never says hello is dropped', async () => {
    vi.useFakeTimers();
    const { h } = hub();
    const ws = connect(h, noJoin);
    await vi.advanceTimersByTimeAsync(10_001);
    expect(ws.messages()[0]).toMatchObject({ type: 'error', code: 'timeout' });
    expect(ws.closeCode).toBe(1008);
    vi.useRealTimers();
    await h.close();
  });

  it('close() ends waiting viewers with 4000, and later ones at once', async () => {
    const { h } = hub();
    const ws = connect(h, noJoin);
    await h.close();
    expect(ws.messages()).toEqual([{ type: 'ended', reason: 'session stopped' }]);
    expect(ws.closeCode).toBe(4000);
    const late = connect(h, noJoin);
    expect(late.messages()).toEqual([{ type: 'ended', reason: 'session stopped' }]);
    expect(late.closeCode).toBe(4000);
    await h.close(); // idempotent
  });
});
