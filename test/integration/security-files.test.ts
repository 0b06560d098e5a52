/**
 * Review M2 and L6 against a real daemon. A session's downloads dir is writable from inside its
 * sandbox, so a page (or a compromised renderer) can plant a symlink there: the file routes
 * must neither list nor serve it (nor a FIFO), on the REST side and through a live link; the
 * same for the debug recording. And every answer forbids framing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, rawRequest, waitFor } from '../helpers/client.js';
import { LeakTracker } from '../helpers/leaks.js';

let d: RunningDaemon;
const leaks = new LeakTracker();

beforeAll(async () => {
  d = await startDaemon();
});

afterAll(async () => {
  await d?.cleanup();
  expect(leaks.leftovers()).toEqual([]);
}, 60_000);

describe('file routes and links planted in session dirs', () => {
  it('a symlink or FIFO in the downloads dir is not listed and is 404 on REST and through a live link', async () => {
    expect((await api(d.url, '/devtools/browser?session=files&keep_alive=600000', { method: 'POST' })).status).toBe(200);
    leaks.note(d.stateDir, 'files');
    const dir = join(d.stateDir, 'downloads', 'files');
    const key = join(d.stateDir, 'live-link.key');
    writeFileSync(join(dir, 'real.txt'), 'hello');
    symlinkSync(key, join(dir, 'report.pdf'));
    symlinkSync(d.stateDir, join(dir, 'state'));
    execFileSync('mkfifo', [join(dir, 'pipe.bin')]);

    const link = await api(d.url, '/session/files/live?kind=view');
    expect(link.status).toBe(200);
    const live = new URL(link.body.url).pathname;

    for (const base of ['/session/files', live]) {
      const list = await api(d.url, `${base}/downloads`);
      expect(list.status).toBe(200);
      expect(list.body.files.map((f: { name: string }) => f.name)).toEqual(['real.txt']);
      const ok = await fetch(`${d.url}${base}/downloads/real.txt`);
      expect(ok.status).toBe(200);
      expect(await ok.text()).toBe('hello');
      for (const name of ['report.pdf', 'state', 'pipe.bin']) {
        const r = await api(d.url, `${base}/downloads/${name}`);
        expect(r.status).toBe(404);
        expect(r.body.error.code).toBe('not_found');
      }
    }
    expect((await api(d.url, '/session/files/stop', { method: 'POST' })).status).toBe(200);
  }, 60_000);

  it('a recording replaced by a symlink is 404', async () => {
    expect((await api(d.url, '/devtools/browser?session=recl&debug=true&keep_alive=600000', { method: 'POST' })).status).toBe(200);
    leaks.note(d.stateDir, 'recl');
    expect((await api(d.url, '/session/recl/stop', { method: 'POST' })).status).toBe(200);
    await waitFor('session stopped', async () => (await api(d.url, '/session/recl')).body.state === 'stopped');
    expect((await fetch(`${d.url}/session/recl/recording`)).status).toBe(200);
    const dir = join(d.stateDir, 'recordings', 'recl');
    const [file] = readdirSync(dir);
    rmSync(join(dir, file!));
    symlinkSync(join(d.stateDir, 'live-link.key'), join(dir, file!));
    const r = await api(d.url, '/session/recl/recording');
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('not_found');
  }, 60_000);
});

describe('framing (clickjacking)', () => {
  it('the dashboard, the live page and the REST answers (errors too) forbid being framed', async () => {
    expect((await api(d.url, '/devtools/browser?session=frames&keep_alive=600000', { method: 'POST' })).status).toBe(200);
    leaks.note(d.stateDir, 'frames');
    const live = new URL((await api(d.url, '/session/frames/live')).body.url).pathname;
    for (const path of ['/', live, `${live}/info`, '/sessions', '/json/version', '/session/nope', '/nowhere']) {
      const r = await rawRequest(d.port, 'GET', path);
      expect(r.headers.get('content-security-policy'), path).toBe("frame-ancestors 'none'");
      expect(r.headers.get('x-frame-options'), path).toBe('DENY');
    }
    expect((await api(d.url, '/session/frames/stop', { method: 'POST' })).status).toBe(200);
  }, 60_000);
});
