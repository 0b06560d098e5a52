import { execFileSync } from 'node:child_process';

/** Integration tests run the real `handoff` binary, so dist/ must match src/. */
export default function setup(): void {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
}
