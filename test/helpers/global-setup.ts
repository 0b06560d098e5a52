import { execFileSync } from 'node:child_process';

/** Integration tests run the real `handoff` binary, so dist/ (code and viewer assets) must match src/. */
export default function setup(): void {
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' });
}
