import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync, utimesSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');
const STAMP = join(ROOT, 'dist/cli/main.js');
/** What the build reads (scripts/setup.sh checks the same, with the same stamp). */
const INPUTS = ['src', 'scripts/build-web.mjs', 'scripts/check-imports.mjs', 'tsconfig.json', 'tsconfig.build.json', 'package.json'];

/** The newest modification time under `path` (a file or a directory tree). */
function newest(path: string): number {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) return 0;
  if (!st.isDirectory()) return st.mtimeMs;
  let max = st.mtimeMs;
  for (const e of readdirSync(path)) max = Math.max(max, newest(join(path, e)));
  return max;
}

/**
 * Integration tests run the real `handoff` binary, so dist/ (code and viewer assets) must match
 * src/. Built only when an input is newer than the last build: `npm test` has just built in
 * scripts/setup.sh, and a second full build costs ~16 s of CPU.
 */
export default function setup(): void {
  if (existsSync(STAMP) && INPUTS.every((p) => newest(join(ROOT, p)) <= statSync(STAMP).mtimeMs)) return;
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit', cwd: ROOT });
  const now = new Date();
  utimesSync(STAMP, now, now); // the stamp is the end of the build, as in scripts/setup.sh
}
