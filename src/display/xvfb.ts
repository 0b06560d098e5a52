import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { launchProcess, type LaunchedProcess } from '../util/process.js';
import type { Logger } from '../util/logger.js';
import { HandoffError } from '../util/errors.js';
import { localeEnv, SANDBOX_PATH, sandboxed, X11_SOCKET_DIR } from '../util/sandbox.js';

export interface XvfbOptions {
  width: number;
  height: number;
  /** Parent of the per-display temp dir; tmpfs (/dev/shm) so the framebuffer file is memory. */
  tmpRoot: string;
  logger?: Logger;
  startTimeoutMs?: number;
  binary?: string;
}

/**
 * One Xvfb server. The display number is chosen by Xvfb itself (-displayfd), the framebuffer
 * is an XWD file in `fbPath` (-fbdir) that the live views read directly, and access needs
 * the MIT-MAGIC-COOKIE in `authFile` so other local users cannot watch or type.
 */
export class XvfbDisplay {
  private constructor(
    readonly display: number,
    readonly dir: string,
    readonly authFile: string,
    /** The cookie as X11 wants it in a connection setup (raw bytes as latin1). */
    readonly cookie: Buffer,
    readonly width: number,
    readonly height: number,
    readonly process: LaunchedProcess,
  ) {}

  get name(): string {
    return `:${this.display}`;
  }
  get fbPath(): string {
    return join(this.dir, 'Xvfb_screen0');
  }
  get pid(): number {
    return this.process.pid;
  }

  static async start(opts: XvfbOptions): Promise<XvfbDisplay> {
    await ensureSocketDir();
    const dir = await mkdtemp(join(opts.tmpRoot, 'handoff-x-'));
    let proc: LaunchedProcess | undefined;
    try {
      const cookie = randomBytes(16);
      const authFile = join(dir, 'Xauthority');
      await writeFile(authFile, xauthorityEntry(cookie), { mode: 0o600 });
      const args = [
        '-displayfd', '3',
        '-screen', '0', `${opts.width}x${opts.height}x24`,
        '-fbdir', dir,
        '-auth', authFile,
        '-nolisten', 'tcp',
        '-noreset',
        // No screen saver or DPMS blanking while nobody types.
        '-s', '0', '-dpms',
        // No GLX: Chromium renders through SwiftShader and never asks X for GL; without it
        // Xvfb does not load Mesa (about 25 MB less PSS per display, and a faster start).
        '-extension', 'GLX',
      ];
      // Sandboxed: its own dir (framebuffer, cookie) and the socket dir the daemon connects
      // through, at the same paths. No pid namespace: see SandboxPolicy.pidNamespace.
      const cmd = sandboxed(opts.binary ?? 'Xvfb', args, {
        writable: [dir, X11_SOCKET_DIR],
        env: { PATH: SANDBOX_PATH, HOME: '/tmp', ...localeEnv() },
        pidNamespace: false,
      });
      proc = launchProcess(cmd.cmd, cmd.args, { stdio: ['ignore', 'ignore', 'pipe', 'pipe'], env: {}, logger: opts.logger });
      // Generous for a busy machine (README "Start-up waits"); an Xvfb that exits fails at once.
      const display = await readDisplayNumber(proc, opts.startTimeoutMs ?? 30_000);
      const xvfb = new XvfbDisplay(display, dir, authFile, cookie, opts.width, opts.height, proc);
      await stat(xvfb.fbPath);
      return xvfb;
    } catch (e) {
      await proc?.close(500);
      await rm(dir, { recursive: true, force: true });
      throw e;
    }
  }

  /** Environment for clients of this display (Chromium). */
  env(): Record<string, string> {
    return { DISPLAY: this.name, XAUTHORITY: this.authFile };
  }

  private closing?: Promise<void>;
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.process.close(1000);
      await rm(this.dir, { recursive: true, force: true });
    })();
    return this.closing;
  }
}

/** X servers' socket dir, which Xvfb's sandbox binds: it must exist (world-writable and sticky, as X makes it). */
async function ensureSocketDir(): Promise<void> {
  try {
    await mkdir(X11_SOCKET_DIR, { mode: 0o1777 });
    await chmod(X11_SOCKET_DIR, 0o1777); // mkdir's mode is cut by the umask
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}

/** An Xauthority entry for FamilyWild with an empty display number: matches any display. */
function xauthorityEntry(cookie: Buffer): Buffer {
  const field = (b: Buffer) => Buffer.concat([u16(b.length), b]);
  return Buffer.concat([
    u16(0xffff),
    field(Buffer.alloc(0)),
    field(Buffer.alloc(0)),
    field(Buffer.from('MIT-MAGIC-COOKIE-1')),
    field(cookie),
  ]);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

function readDisplayNumber(proc: LaunchedProcess, timeoutMs: number): Promise<number> {
  const fd = proc.child.stdio[3] as NodeJS.ReadableStream | null;
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => done(new Error('Xvfb did not report a display in time')), timeoutMs);
    const done = (err: Error | null, n?: number) => {
      clearTimeout(timer);
      fd?.removeAllListeners('data');
      if (err) reject(new HandoffError('browser_failed', 'the X display could not start', {}, `${err.message}: ${proc.stderrTail()}`));
      else resolve(n!);
    };
    fd?.on('data', (chunk: Buffer) => {
      text += chunk.toString();
      if (text.includes('\n')) done(null, Number.parseInt(text, 10));
    });
    proc.exited.then(() => done(new Error('Xvfb exited')));
  });
}
