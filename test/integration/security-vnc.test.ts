import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';
import { freePort } from '../helpers/vnc.js';
import { RawRfb } from '../helpers/vnc-raw.js';

/**
 * Issue 8 items 5 and 6 against a real daemon with real RFB clients on raw sockets:
 * VNC passwords that are the same DES key are refused (409), characters VNC cannot carry
 * are a 400, a right password from a denied network looks exactly like a wrong one, and 200
 * parallel guessers from one address get only a handful of real checks.
 *
 * Parts speak from several loopback addresses (Linux routes all of 127/8 to lo): they are all
 * one source to the throttle (M3), so each part ends with a success (which resets it).
 */
let d: RunningDaemon;
let vncPort: number;
const leaks = new LeakTracker();
const open = new Set<net.Socket>();

const ACCENT = 'éééé1234';

beforeAll(async () => {
  vncPort = await freePort();
  d = await startDaemon({ args: ['--vnc-port', String(vncPort)] });
  await create('accent', ACCENT);
  await create('fenced', 'fencepw1', '&hitl_allowed_networks=127.0.0.21/32');
  leaks.note(d.stateDir);
});

afterAll(async () => {
  for (const s of open) s.destroy();
  await d?.cleanup();
  expect(leaks.leftovers()).toEqual([]);
});

function create(id: string, password: string, extra = '') {
  return api(d.url, `/devtools/browser?session=${id}&enable_vnc=true&vnc_password=${encodeURIComponent(password)}${extra}`, { method: 'POST' });
}

const audit = async (query: string) => (await api(d.url, `/audit?${query}&limit=10000`)).body.events as Array<Record<string, any>>;

/**
 * One RFB 3.8 login from `from` with `password` (a string goes out as UTF-8, a Buffer as is).
 * Resolves with the desktop name on success, else the server's reason.
 */
async function login(from: string, password: string | Buffer): Promise<{ ok: boolean; text: string }> {
  const socket = net.connect({ port: vncPort, host: '127.0.0.1', localAddress: from });
  open.add(socket);
  socket.once('close', () => open.delete(socket));
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const c = new RawRfb(socket);
    await c.handshake(password as string);
    return { ok: true, text: c.name };
  } catch (e) {
    return { ok: false, text: (e as Error).message };
  } finally {
    socket.destroy();
  }
}

describe('VNC password uniqueness (issue 8 item 5)', () => {
  it('refuses passwords with the same DES key as a live session: 409 vnc_password_conflict', async () => {
    // é is 2 UTF-8 bytes: the key is éééé's 8 bytes either way.
    const same8Bytes = await create('clash1', 'éééé5678');
    expect(same8Bytes.status).toBe(409);
    expect(same8Bytes.body.error.code).toBe('vnc_password_conflict');
    // Every byte differs from éééé's UTF-8 only in its top bit, which DES ignores.
    expect((await create('clash2', 'C)C)C)C)')).body.error?.code).toBe('vnc_password_conflict');
    // ...and from its Latin-1 form (what noVNC sends).
    expect((await create('clash3', 'iiii1234')).body.error?.code).toBe('vnc_password_conflict');
    const sessions = (await api(d.url, '/sessions')).body.sessions.map((s: { session_id: string }) => s.session_id);
    expect(sessions.filter((id: string) => id.startsWith('clash'))).toEqual([]);
  });

  it('refuses characters VNC clients cannot all send: 400 bad_request saying so', async () => {
    for (const pw of ['日本語のパスワードです', 'tab\tpassword']) {
      const r = await create('badchars', pw);
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ code: 'bad_request', message: expect.stringMatching(/vnc_password may contain only printable ASCII and Latin-1/) });
    }
  });

  it('a Latin-1 password works from a UTF-8 client and from a noVNC-style one-byte-per-character client', async () => {
    expect(await login('127.0.0.10', ACCENT)).toEqual({ ok: true, text: 'handoff accent' });
    expect(await login('127.0.0.10', Buffer.from(ACCENT, 'latin1'))).toEqual({ ok: true, text: 'handoff accent' });
  });
});

describe('VNC guessing (issue 8 item 6)', () => {
  it('the right password from a network outside hitl_allowed_networks gets exactly the wrong password answer', async () => {
    const right = await login('127.0.0.20', 'fencepw1');
    const wrong = await login('127.0.0.20', 'fencepw2');
    expect(right).toEqual({ ok: false, text: 'authentication failed' });
    expect(wrong).toEqual(right);
    // The operator still sees what happened; the allowed network gets in.
    expect(await audit('session_id=fenced&type=network_denied')).toHaveLength(1);
    expect(await login('127.0.0.21', 'fencepw1')).toEqual({ ok: true, text: 'handoff fenced' });
  });

  it('200 parallel guessers from one address get at most 20 real checks in 10 s; the right password is refused while locked out, and works after', async () => {
    const attacker = '127.0.0.30';
    const outcomes = { checked: 0, refused: 0, other: [] as string[] };
    const until = Date.now() + 10_000;
    // 200 guessers, each reconnecting after every answer (a short pause spares the shared CPU).
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        for (let n = 0; Date.now() < until; n++) {
          const r = await login(attacker, `guess-${i}-${n}`);
          if (r.text === 'authentication failed') outcomes.checked++;
          else if (/too many failed attempts|unauthenticated attempts/.test(r.text)) outcomes.refused++;
          else outcomes.other.push(r.text);
          await new Promise((res) => setTimeout(res, 300));
        }
      }),
    );
    const rows = (await audit('type=auth_failed')).filter((e) => e.source_ip === attacker);
    console.log(`guessing figure: ${outcomes.checked + outcomes.refused} attempts in 10 s, ${rows.length} checked, ${outcomes.refused} refused unchecked`);
    expect(outcomes.other).toEqual([]);
    expect(rows.length).toBe(outcomes.checked);
    expect(rows.length).toBeGreaterThanOrEqual(4);
    expect(rows.length).toBeLessThanOrEqual(20);
    expect(outcomes.refused).toBeGreaterThan(1000);
    // Audit rows carry the lockouts; refusals are counted in them, not written one by one.
    expect(rows.at(-1)!.detail).toMatchObject({ failures: rows.length, locked_ms: expect.any(Number), refused_unchecked: expect.any(Number) });
    expect(rows.reduce((n, e) => n + e.detail.refused_unchecked, 0)).toBeGreaterThan(0);
    expect(rows.every((e) => e.transport === 'vnc')).toBe(true);

    // Locked out: the right password is refused without a check, from any loopback address
    // (M3: rotating 127.x addresses is the same source).
    const during = await login(attacker, ACCENT);
    expect(during.ok).toBe(false);
    expect(during.text).toMatch(/^too many failed attempts from your address; try again in \d+ s$/);
    expect((await login('127.0.0.31', ACCENT)).text).toMatch(/^too many failed attempts from your address/);
    expect((await audit('type=auth_failed')).filter((e) => e.source_ip === attacker)).toHaveLength(rows.length);

    // After the lockout the right password works (a refusal does not extend the lockout).
    const wait = Number(/try again in (\d+) s/.exec(during.text)![1]);
    expect(wait).toBeLessThanOrEqual(60);
    await new Promise((res) => setTimeout(res, wait * 1000 + 200));
    expect(await login(attacker, ACCENT)).toEqual({ ok: true, text: 'handoff accent' });
  }, 120_000);
});
