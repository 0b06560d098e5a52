import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SessionRegistry } from '../../../src/sessions/registry.js';
import type { SessionDeps } from '../../../src/sessions/session.js';
import type { SessionParams } from '../../../src/sessions/params.js';
import type { BrowserPart, DisplayPart } from '../../../src/sessions/parts.js';
import type { AuditInput } from '../../../src/audit/log.js';
import { silentLogger } from '../../../src/util/logger.js';
import { deferred, FakeParts } from './fakes.js';

/** The pool's bookkeeping with fake parts: which create gets a spare, how many start, the limit. */

const DEFAULT: SessionParams = { width: 1280, height: 720, timeoutS: 900, enableVnc: false, vncPassword: null, enableRtc: false, debug: false, profile: null } as unknown as SessionParams;
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Fake parts whose processes are alive (this process), counting starts. */
function setup(o: { maxSessions: number; warm: number; browser?: (orig: () => Promise<BrowserPart>) => Promise<BrowserPart> }) {
  const stateDir = mkdtempSync(join(tmpdir(), 'handoff-warm-unit-'));
  dirs.push(stateDir);
  const parts = new FakeParts();
  const display = parts.display.bind(parts);
  parts.display = async () => ({ ...(await display()), processes: [{ kind: 'xvfb', pid: process.pid, dir: null }] }) as DisplayPart;
  const browser = parts.browser;
  const alive = async () => Object.assign(await browser(), { processes: [{ kind: 'chromium' as const, pid: process.pid, dir: null }] });
  parts.browser = () => (o.browser ? o.browser(alive) : alive());
  const audit: AuditInput[] = [];
  let row = 0;
  const registry = new SessionRegistry({
    config: { stateDir, host: '127.0.0.1', vncPort: 0, handoffGraceMs: 15_000, maxSessions: o.maxSessions, warm: o.warm, minFreeMb: 0, stoppedRetentionS: 3600 },
    audit: { append: (e: AuditInput) => void audit.push(e), writable: true, degraded: null },
    journal: { recordOwned: () => ++row, releaseOwned: () => {}, saveSession: () => {} },
    logger: silentLogger,
    parts,
  } as unknown as SessionDeps);
  const starts = () => parts.log.filter((l) => l === 'browser:start').length;
  const spare = (id: string) => (audit.find((e) => e.session_id === id && e.type === 'session_created')!.detail as { spare: boolean }).spare;
  return { registry, parts, starts, spare };
}

const until = async (fn: () => boolean) => {
  for (let i = 0; i < 200 && !fn(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(fn()).toBe(true);
};

describe('warm pool', () => {
  it('a default create takes the spare (or the one starting), others start cold; refills one at a time', async () => {
    const t = setup({ maxSessions: 8, warm: 1 });
    t.registry.startWarmPool();
    // Taken while it starts: no second start for this create.
    const a = t.registry.create('a', { ...DEFAULT }, false);
    await a.ready;
    expect(t.spare('a')).toBe(true);
    await until(() => t.registry.warm.spares === 1);
    expect(t.starts()).toBe(2); // a's (taken while starting) and its refill
    const b = t.registry.create('b', { ...DEFAULT, width: 1000 }, false);
    await b.ready;
    expect(t.spare('b')).toBe(false);
    expect(t.registry.warm.spares).toBe(1);
    const c = t.registry.create('c', { ...DEFAULT }, false);
    await c.ready;
    expect(t.spare('c')).toBe(true);
    await until(() => t.registry.warm.spares === 1);
    expect(t.starts()).toBe(4); // a's spare, its refill, b cold, c's refill
    await t.registry.close();
    expect(t.registry.warm.spares).toBe(0);
  });

  it('at the limit the spare is given up for a cold create; none starts while live sessions fill the limit', async () => {
    const t = setup({ maxSessions: 2, warm: 1 });
    t.registry.startWarmPool();
    await until(() => t.registry.warm.spares === 1);
    await t.registry.create('a', { ...DEFAULT, width: 1000 }, false).ready;
    expect(t.registry.warm.spares).toBe(1); // 1 live + 1 spare: at the limit, not above
    const b = t.registry.create('b', { ...DEFAULT, width: 1000 }, false);
    expect(t.registry.warm.spares).toBe(0);
    await b.ready;
    expect(() => t.registry.create('c', { ...DEFAULT }, false)).toThrow(/at most 2/);
    const starts = t.starts();
    await b.stop();
    await until(() => t.registry.warm.spares === 1);
    expect(t.starts()).toBe(starts + 1);
    await t.registry.close();
  });

  it('a spare that fails after a create took it: the session starts cold instead', async () => {
    const gate = deferred();
    let n = 0;
    const t = setup({
      maxSessions: 8,
      warm: 1,
      browser: async (orig) => {
        if (++n === 1) {
          await gate.promise;
          throw new Error('the spare broke');
        }
        return orig();
      },
    });
    t.registry.startWarmPool();
    const a = t.registry.create('a', { ...DEFAULT }, false);
    gate.resolve();
    await a.ready;
    expect(a.state).toBe('ready');
    expect(t.spare('a')).toBe(true);
    expect(t.parts.log.filter((l) => l === 'display:start')).toHaveLength(2); // the spare's, then a cold one
    await t.registry.close();
  });
});
