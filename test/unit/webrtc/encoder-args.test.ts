import { describe, expect, it } from 'vitest';
import { ffmpegArgs, h264Level, h264ProfileLevelId, targetBitrate } from '../../../src/liveview/webrtc/encoder.js';

/** The value after `flag` (flags appear once each). */
function after(args: string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

describe('ffmpeg command line', () => {
  const h264 = ffmpegArgs({ codec: 'H264', display: ':7', width: 1280, height: 720, fps: 30, port: 40123 });
  const vp8 = ffmpegArgs({ codec: 'VP8', display: ':7', width: 1280, height: 720, fps: 30, port: 40123 });

  it('grabs the display with x11grab at the delivery rate, without the cursor', () => {
    for (const a of [h264, vp8]) {
      expect(after(a, '-f')).toBe('x11grab');
      expect(after(a, '-i')).toBe(':7');
      expect(after(a, '-video_size')).toBe('1280x720');
      expect(after(a, '-framerate')).toBe('30');
      expect(after(a, '-draw_mouse')).toBe('0');
      expect(a).toContain('-nostdin');
    }
  });

  it('H.264: constrained baseline, ultrafast, zerolatency, no B-frames, a one-second GOP, headers on every IDR', () => {
    expect(after(h264, '-c:v')).toBe('libx264');
    expect(after(h264, '-profile:v')).toBe('baseline');
    expect(after(h264, '-level:v')).toBe('3.1');
    expect(after(h264, '-preset')).toBe('ultrafast');
    expect(after(h264, '-tune')).toBe('zerolatency');
    expect(after(h264, '-bf')).toBe('0');
    expect(after(h264, '-g')).toBe('30');
    expect(after(h264, '-keyint_min')).toBe('30');
    expect(after(h264, '-pix_fmt')).toBe('yuv420p');
    expect(after(h264, '-x264-params')).toContain('repeat-headers=1');
  });

  it('VP8: libvpx realtime at its fastest speed, no lookahead', () => {
    expect(after(vp8, '-c:v')).toBe('libvpx');
    expect(after(vp8, '-deadline')).toBe('realtime');
    expect(after(vp8, '-cpu-used')).toBe('16');
    expect(after(vp8, '-lag-in-frames')).toBe('0');
    expect(after(vp8, '-g')).toBe('30');
    expect(after(vp8, '-threads')).toBe('1');
  });

  it('sends RTP to the loopback port only, with our payload types and no RTCP', () => {
    expect(h264.at(-1)).toBe('rtp://127.0.0.1:40123?pkt_size=1200');
    expect(after(h264, '-payload_type')).toBe('96');
    expect(after(vp8, '-payload_type')).toBe('97');
    expect(after(h264, '-rtpflags')).toBe('skip_rtcp');
    expect(h264.filter((a) => a === '-f')).toHaveLength(2); // x11grab in, rtp out
    expect(h264[h264.lastIndexOf('-f') + 1]).toBe('rtp');
  });

  it('crops an odd size to even (4:2:0) and only then', () => {
    expect(after(h264, '-vf')).toBeUndefined();
    expect(after(ffmpegArgs({ codec: 'H264', display: ':1', width: 1279, height: 719, fps: 30, port: 1 }), '-vf')).toBe('crop=trunc(iw/2)*2:trunc(ih/2)*2');
  });
});

describe('H.264 level', () => {
  it('is the lowest level that fits the size and rate (H.264 table A-1)', () => {
    expect(h264Level(640, 360, 30)).toEqual({ idc: 30, name: '3.0' });
    expect(h264Level(1280, 720, 30)).toEqual({ idc: 31, name: '3.1' });
    expect(h264Level(1280, 720, 60)).toEqual({ idc: 32, name: '3.2' });
    expect(h264Level(1920, 1080, 30)).toEqual({ idc: 40, name: '4.0' });
    expect(h264Level(3840, 2160, 30)).toEqual({ idc: 51, name: '5.1' });
    expect(h264ProfileLevelId(h264Level(1280, 720, 30))).toBe('42e01f');
  });

  it('bitrate scales with pixels, within bounds', () => {
    expect(targetBitrate(1280, 720, 30)).toBe(2_764_800);
    expect(targetBitrate(100, 100, 30)).toBe(500_000);
    expect(targetBitrate(7680, 4320, 60)).toBe(8_000_000);
  });
});
