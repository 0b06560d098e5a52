import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { launchProcess, type LaunchedProcess } from '../util/process.js';
import type { Logger } from '../util/logger.js';
import { displayClientPaths, localeEnv, SANDBOX_PATH, sandboxed } from '../util/sandbox.js';

export interface RecorderOptions {
  /** The display to capture: DISPLAY and XAUTHORITY for ffmpeg's x11grab. */
  display: { name: string; authFile: string };
  width: number;
  height: number;
  /** The .mp4 file to write. */
  path: string;
  logger?: Logger;
  ffmpegPath?: string;
}

let maxBytes = 1024 * 1024 * 1024;

/** The size cap of one recording (`--max-recording-mb`), set once by the daemon at start. */
export function setRecordingLimit(bytes: number): void {
  maxBytes = bytes;
}

/**
 * Records a display to an MP4 file for replay (API.md 3.1 `debug`). Fragmented MP4, so the
 * file plays even while it is being written or if ffmpeg is killed; a low frame rate and a
 * fast preset keep it to a small share of a core. It stops at the size cap (setRecordingLimit).
 */
export class DisplayRecorder {
  private constructor(
    readonly path: string,
    readonly process: LaunchedProcess,
  ) {}

  get pid(): number {
    return this.process.pid;
  }

  static async start(o: RecorderOptions): Promise<DisplayRecorder> {
    await mkdir(dirname(o.path), { recursive: true, mode: 0o700 });
    const args = [
      '-nostdin', // never read commands from stdin
      '-loglevel', 'error',
      '-f', 'x11grab',
      '-framerate', '10', // enough to replay what happened, cheap to encode
      '-video_size', `${o.width}x${o.height}`,
      '-i', o.display.name,
      '-c:v', 'libx264',
      '-preset', 'veryfast',
      '-crf', '30', // small files; text stays readable
      '-pix_fmt', 'yuv420p', // what every player decodes
      '-movflags', '+frag_keyframe+empty_moov+default_base_moof', // playable while written
      '-frag_duration', '1000000', // 1 s fragments: written as they come, so the cap below is checked every second
      '-fs', String(maxBytes), // the size cap: ffmpeg stops writing (and exits) there; the file stays playable
      '-y', o.path,
    ];
    // Sandboxed: it sees the display and writes this session's recording dir, nothing else.
    const cmd = sandboxed(o.ffmpegPath ?? 'ffmpeg', args, {
      writable: [dirname(o.path)],
      readable: displayClientPaths(o.display),
      env: { PATH: SANDBOX_PATH, HOME: '/tmp', DISPLAY: o.display.name, XAUTHORITY: o.display.authFile, ...localeEnv() },
    });
    const proc = launchProcess(cmd.cmd, cmd.args, { env: {}, logger: o.logger });
    return new DisplayRecorder(o.path, proc);
  }

  /** SIGTERM lets ffmpeg write its last fragment; it is killed if it takes too long. */
  close(): Promise<void> {
    return this.process.close(3000);
  }
}
