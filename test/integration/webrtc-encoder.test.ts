/**
 * FfmpegEncoder's process lifecycle with a stand-in for ffmpeg (a small node script that
 * sends RTP to the rtp:// URL it is given, or misbehaves on request): packets reach
 * subscribers with keyframes marked, a dying encoder is restarted with backoff under a new
 * generation, a silent one is restarted by the watchdog, strangers on loopback are ignored,
 * and close() reaps the process.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FfmpegEncoder, type EncodedPacket } from '../../src/liveview/webrtc/encoder.js';
import { silentLogger } from '../../src/util/logger.js';
import { isAlive, sleep, waitFor } from '../helpers/webrtc-harness.js';

/**
 * Sends H.264-shaped RTP at 30 packets/s: every 10th packet a STAP-A starting with an SPS.
 * Mode die: exits after 5 packets; mute: sends nothing and sleeps; nokey: never a keyframe.
 * The mode is baked into each script: the encoder's sandbox passes no environment through.
 */
const fakeFfmpeg = (mode: string) => `#!/usr/bin/env node
const dgram = require('node:dgram');
const url = process.argv[process.argv.length - 1];
const m = /^rtp:\\/\\/([\\d.]+):(\\d+)/.exec(url);
const mode = '${mode}';
if (mode === 'mute') { setInterval(() => {}, 1000); return; }
const s = dgram.createSocket('udp4');
let seq = Math.floor(Math.random() * 65536), ts = Math.floor(Math.random() * 2 ** 32), n = 0;
setInterval(() => {
  const head = Buffer.alloc(12);
  head[0] = 0x80; head[1] = 0x80 | 96;
  head.writeUInt16BE(seq = (seq + 1) & 0xffff, 2);
  head.writeUInt32BE(ts = (ts + 3000) >>> 0, 4);
  head.writeUInt32BE(0xabcdef01, 8);
  const payload = n % 10 === 0 && mode !== 'nokey' ? Buffer.from([0x78, 0x00, 0x02, 0x67, 0x42]) : Buffer.from([0x41, 0x9a]);
  s.send(Buffer.concat([head, payload]), Number(m[2]), m[1]);
  if (++n === 5 && mode === 'die') process.exit(3);
}, 33);
`;

let dir: string;
const MODES = ['ok', 'die', 'mute', 'nokey'] as const;
const encoders: FfmpegEncoder[] = [];
const pids = new Set<number>();

function encoder(mode: (typeof MODES)[number]): FfmpegEncoder {
  const e = new FfmpegEncoder({
    codec: 'H264',
    display: { name: ':0', authFile: '/nonexistent' },
    width: 64,
    height: 64,
    ffmpegPath: join(dir, `ffmpeg-${mode}`),
    logger: silentLogger,
    onProcess: (pid) => pid !== null && pids.add(pid),
  });
  encoders.push(e);
  return e;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'handoff-fake-ffmpeg-'));
  for (const mode of MODES) {
    await writeFile(join(dir, `ffmpeg-${mode}`), fakeFfmpeg(mode));
    await chmod(join(dir, `ffmpeg-${mode}`), 0o755);
  }
});

afterAll(async () => {
  for (const e of encoders) await e.close();
  for (const pid of pids) expect(isAlive(pid), `encoder ${pid} still runs`).toBe(false);
  await rm(dir, { recursive: true, force: true });
});

describe('FfmpegEncoder', () => {
  it('delivers packets with keyframe starts marked, ignores other senders, and close() reaps it', async () => {
    const e = encoder('ok');
    const got: EncodedPacket[] = [];
    e.subscribe((p) => got.push(p));
    const pid = await waitFor('ffmpeg', () => e.pid);
    await waitFor('a keyframe and more', () => got.filter((p) => p.keyframeStart).length >= 2, 20_000);
    expect(got.every((p) => p.generation === 1 && p.info.payloadType === 96)).toBe(true);
    expect(got.filter((p) => p.keyframeStart).every((p) => p.data[12] === 0x78)).toBe(true);

    // A stranger on loopback who finds the port cannot inject packets.
    const port = (e as unknown as { port: number }).port;
    const stranger = createSocket('udp4');
    const forged = Buffer.from([0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0x67, 0xff]);
    const before = got.length;
    await new Promise<void>((r) => stranger.send(forged, port, '127.0.0.1', () => r()));
    await sleep(300);
    stranger.close();
    expect(got.slice(before).some((p) => p.data.equals(forged))).toBe(false);

    await e.close();
    expect(isAlive(pid)).toBe(false);
    expect(e.pid).toBeNull();
  });

  it('restarts a dying ffmpeg with growing delays, each run a new generation', async () => {
    const e = encoder('die');
    const generations = new Set<number>();
    e.subscribe((p) => generations.add(p.generation));
    await waitFor('three runs', () => generations.size >= 3, 20_000);
    expect([...generations].slice(0, 3)).toEqual([1, 2, 3]);
    await e.close();
  });

  it('restarts an ffmpeg that stops sending (watchdog)', async () => {
    const e = encoder('mute');
    const first = await waitFor('ffmpeg', () => e.pid);
    await waitFor('a second ffmpeg', () => e.pid !== null && e.pid !== first, 20_000);
    expect(isAlive(first)).toBe(false);
    await e.close();
  });

  it('keyframe requests restart ffmpeg only when keyframes are overdue, and not twice in a row', async () => {
    const e = encoder('nokey');
    let packets = 0;
    e.subscribe(() => packets++);
    const first = await waitFor('ffmpeg', () => e.pid);
    await waitFor('packets', () => packets > 5, 10_000);
    e.requestKeyframe(); // the run is young: the GOP will bring one
    await sleep(300);
    expect(e.pid).toBe(first);
    await sleep(3000); // now keyframes are overdue (three GOPs without one)
    const started = pids.size;
    e.requestKeyframe();
    e.requestKeyframe(); // rate limited: the restart just asked for is the only one
    e.requestKeyframe();
    const second = await waitFor('a restarted ffmpeg', () => e.pid !== null && e.pid !== first && e.pid, 10_000);
    await sleep(500);
    expect(e.pid).toBe(second);
    expect(pids.size).toBe(started + 1);
    await e.close();
  });
});
