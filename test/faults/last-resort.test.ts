import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startDaemon } from '../helpers/daemon.js';
import { api } from '../helpers/client.js';

/**
 * README "Fault policy": the last-resort handlers `handoff serve` installs log an uncaught
 * exception or an unhandled rejection with its stack, count it, and the process keeps running.
 * Run in a child process (on the built daemon code) so the test runner's own handlers stay out.
 */
const dist = (p: string) => pathToFileURL(resolve(import.meta.dirname, '../../dist', p)).href;

describe('last-resort handlers', () => {
  it('log with the stack, count, and keep the process running', async () => {
    const code = `
      import { installLastResortHandlers, uncaughtErrorCount } from ${JSON.stringify(dist('main.js'))};
      import { createLogger } from ${JSON.stringify(dist('util/logger.js'))};
      installLastResortHandlers(createLogger('info'));
      setTimeout(function socketHandlerBug() { throw new Error('boom from a handler'); }, 10);
      Promise.reject(new Error('nobody awaited this'));
      setTimeout(() => { console.log('still alive, counted ' + uncaughtErrorCount()); process.exit(0); }, 300);
    `;
    const { stdout, exitCode } = await new Promise<{ stdout: string; exitCode: number }>((done) =>
      execFile(process.execPath, ['--input-type=module', '-e', code], { timeout: 20_000 }, (err, stdout) => done({ stdout, exitCode: err ? 1 : 0 })),
    );
    expect(exitCode).toBe(0);
    expect(stdout).toContain('still alive, counted 2');
    const lines = stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    const uncaught = lines.find((l) => l.kind === 'uncaught exception');
    expect(uncaught).toMatchObject({ level: 'error', error: 'boom from a handler' });
    expect(uncaught.stack).toContain('socketHandlerBug');
    expect(lines.find((l) => l.kind === 'unhandled rejection')).toMatchObject({ level: 'error', error: 'nobody awaited this' });
  });

  it('a daemon whose log reader went away (EPIPE) still stops on SIGTERM', async () => {
    const d = await startDaemon();
    try {
      d.proc.stdout!.destroy();
      d.proc.stderr!.destroy();
      const created = await api(d.url, '/devtools/browser', { method: 'POST' }); // logs a few lines
      expect(created.status).toBe(200);
      const stopped = await Promise.race([d.stop('SIGTERM').then(() => true), new Promise((r) => setTimeout(() => r(false), 30_000))]);
      expect(stopped).toBe(true);
    } finally {
      await d.stop('SIGKILL');
      await d.cleanup();
    }
  });
});

