import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { LiveLinks, CLOSE_LINK_REVOKED, MAX_SOCKETS_PER_LINK, type LinkSocket } from '../../../src/sessions/live-links.js';
import type { Session } from '../../../src/sessions/session.js';
import type { SessionRegistry } from '../../../src/sessions/registry.js';
import { HandoffError } from '../../../src/util/errors.js';

/** Just what LiveLinks uses of a session. */
class FakeSession extends EventEmitter {
  live = true;
  readonly audits: any[] = [];
  constructor(
    readonly id: string,
    readonly runId: string,
  ) {
    super();
  }
  audit(e: unknown): void {
    this.audits.push(e);
  }
  end(): void {
    this.live = false;
    this.emit('ended', 'session stopped');
  }
}

class FakeSocket extends EventEmitter implements LinkSocket {
  closedWith?: number;
  readonly sent: string[] = [];
  send(data: string): void {
    this.sent.push(data);
  }
  close(code: number): void {
    if (this.closedWith !== undefined) return;
    this.closedWith = code;
    this.emit('close');
  }
  terminate(): void {
    this.close(1006);
  }
}

function setup(ttlMs = 60_000) {
  const sessions = new Map<string, FakeSession>();
  const registry = { get: (id: string) => sessions.get(id) } as unknown as SessionRegistry;
  const links = new LiveLinks(randomBytes(32), registry, ttlMs);
  const add = (id: string) => {
    const s = new FakeSession(id, `run-${id}-${Math.random()}`);
    sessions.set(id, s);
    return s;
  };
  const mint = (s: FakeSession, kind: 'control' | 'view' = 'control', singleUse = false) =>
    new URL(links.issue(s as unknown as Session, 'h:1', kind, '127.0.0.1', { singleUse }).url).pathname.split('/')[2]!;
  return { links, add, mint };
}

const code = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    if (e instanceof HandoffError) return e.code;
    throw e;
  }
  return 'ok';
};

describe('LiveLinks', () => {
  it('checking never opens a link; a connected socket does', () => {
    const { links, add, mint } = setup(-1); // every link is past its TTL at once
    const s = add('a');
    const tok = mint(s);
    expect(code(() => links.check(tok))).toBe('link_expired');
    expect(code(() => links.claim(tok))).toBe('link_expired');
  });

  it('an opened link outlives the TTL; a looked-at one does not', async () => {
    const { links, add, mint } = setup(50);
    const s = add('a');
    const looked = mint(s);
    const opened = mint(s);
    expect(links.check(looked).kind).toBe('control');
    links.claim(opened).connected(new FakeSocket());
    await new Promise((r) => setTimeout(r, 80));
    expect(code(() => links.check(looked))).toBe('link_expired');
    expect(code(() => links.check(opened))).toBe('ok');
  });

  it('made-up and revoked links are not valid; links of an ended session name the session', () => {
    const { links, add, mint } = setup();
    const s = add('a');
    const tok = mint(s, 'view');
    expect(code(() => links.check(tok.slice(0, -2) + 'AA'))).toBe('not_found');
    expect(code(() => links.check('nonsense'))).toBe('not_found');
    const ws = new FakeSocket();
    links.claim(tok).connected(ws);
    links.revoke(s as unknown as Session, '127.0.0.1');
    expect(ws.closedWith).toBe(CLOSE_LINK_REVOKED);
    expect(code(() => links.check(tok))).toBe('not_found');
    expect(s.audits.at(-1)).toMatchObject({ type: 'live_url_revoked', detail: { viewers_closed: 1 } });
    const later = mint(s);
    expect(code(() => links.check(later))).toBe('ok');
    s.end();
    expect(code(() => links.check(later))).toBe('session_not_found');
  });

  it('a socket accepted after a revocation is closed at once', () => {
    const { links, add, mint } = setup();
    const s = add('a');
    const pending = links.claim(mint(s));
    links.revoke(s as unknown as Session);
    const ws = new FakeSocket();
    pending.connected(ws);
    expect(ws.closedWith).toBe(CLOSE_LINK_REVOKED);
  });

  it('single use: one socket; its page works while it is there, then 410', () => {
    const { links, add, mint } = setup();
    const s = add('a');
    const tok = mint(s, 'control', true);
    const first = links.claim(tok);
    expect(code(() => links.claim(tok))).toBe('link_expired');
    const ws = new FakeSocket();
    first.connected(ws);
    expect(code(() => links.check(tok))).toBe('ok');
    expect(code(() => links.claim(tok))).toBe('link_expired');
    ws.close(1000);
    expect(code(() => links.check(tok))).toBe('link_expired');
    expect(s.audits[0]).toMatchObject({ type: 'live_url_issued', detail: { kind: 'control', single_use: true } });
  });

  it('forgets a run when its session ends', () => {
    const { links, add, mint } = setup();
    const s = add('a');
    links.claim(mint(s)).connected(new FakeSocket());
    expect((links as any).runs.size).toBe(1);
    s.end();
    expect((links as any).runs.size).toBe(0);
  });

  it('a link holds at most MAX_SOCKETS_PER_LINK sockets across transports (M4); a place frees when one closes', () => {
    const { links, add, mint } = setup();
    const s = add('a');
    const tok = mint(s, 'view');
    const open = Array.from({ length: MAX_SOCKETS_PER_LINK }, () => new FakeSocket());
    for (const ws of open) expect(links.claim(tok).connected(ws)).toBe(true);
    const over = new FakeSocket();
    expect(links.claim(tok).connected(over)).toBe(false);
    expect(over.closedWith).toBe(4029);
    expect(JSON.parse(over.sent[0]!)).toMatchObject({ type: 'error', code: 'too_many_viewers' });
    // Binary sockets (noVNC) get the close only.
    const vnc = new FakeSocket();
    expect(links.claim(tok).connected(vnc, false)).toBe(false);
    expect([vnc.closedWith, vnc.sent]).toEqual([4029, []]);
    // Another link of the same session is not affected.
    expect(links.claim(mint(s, 'control')).connected(new FakeSocket())).toBe(true);
    open[0]!.close(1000);
    expect(links.claim(tok).connected(new FakeSocket())).toBe(true);
  });
});
