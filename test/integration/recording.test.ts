import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { alive, api, ownedRows, waitFor } from '../helpers/client.js';

/** API.md 3.1 `debug` and 4 `GET /session/ID/recording`: a session records its screen for replay. */
describe('debug recording', () => {
  let daemon: RunningDaemon;
  const dir = mkdtempSync(join(tmpdir(), 'handoff-test-recording-'));

  beforeAll(async () => {
    daemon = await startDaemon();
  });

  afterAll(async () => {
    await daemon?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('records a debug=true session to a playable video, served after the session stops', async () => {
    const agent = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=rec&debug=true&width=800&height=600`, defaultViewport: null });
    expect((await api(daemon.url, '/session/rec')).body.debug).toBe(true);
    const recorder = ownedRows(daemon.stateDir, 'rec').find((r) => r.kind === 'ffmpeg');
    expect(recorder?.pid).toBeTruthy();
    const page = (await agent.pages())[0]!;
    for (const colour of ['red', 'green', 'blue']) {
      await page.goto(`data:text/html,<body style="margin:0;background:${colour}">`);
      await new Promise((r) => setTimeout(r, 700));
    }
    await agent.close(); // auto_close: the session stops and the recorder finishes its file
    await waitFor('session stopped', async () => (await api(daemon.url, '/session/rec')).body.state === 'stopped');
    await waitFor('recorder reaped', () => !alive(recorder!.pid!));

    const res = await fetch(`${daemon.url}/session/rec/recording`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('video/mp4');
    const file = join(dir, 'rec.mp4');
    writeFileSync(file, Buffer.from(await res.arrayBuffer()));
    const probe = JSON.parse(execFileSync('ffprobe', ['-v', 'error', '-show_streams', '-show_format', '-of', 'json', file], { encoding: 'utf8' }));
    const video = probe.streams.find((s: any) => s.codec_type === 'video');
    expect(video).toMatchObject({ codec_name: 'h264', width: 800, height: 600 });
    // Fragmented MP4 keeps the duration in the fragments: count the decoded frames instead.
    const frames = Number(execFileSync('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', file], { encoding: 'utf8' }).trim());
    expect(frames).toBeGreaterThan(10);
  });

  it('a session without debug has no recording', async () => {
    const agent = await puppeteer.connect({ browserWSEndpoint: `${daemon.wsUrl}/?session=plain&auto_close=false`, defaultViewport: null });
    const r = await api(daemon.url, '/session/plain/recording');
    expect(r.status).toBe(404);
    expect(r.body.error.code).toBe('not_found');
    expect(ownedRows(daemon.stateDir, 'plain').some((x) => x.kind === 'ffmpeg')).toBe(false);
    await agent.disconnect();
    expect((await api(daemon.url, '/session/nope/recording')).body.error.code).toBe('session_not_found');
  });
});
