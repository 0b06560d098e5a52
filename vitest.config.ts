import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    globalSetup: ['test/helpers/global-setup.ts'],
    // Integration tests start real Chromium and Xvfb: one file at a time on 2 cores.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
    projects: [
      {
        extends: true,
        // Unit tests share one worker and its module cache: a fresh worker per file cost more
        // than the tests (50 files: 403 s vs 71 s at load 41). None mocks modules, stubs env or
        // globals, or adds process listeners, and fake timers are restored after each use.
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'], isolate: false },
      },
      {
        extends: true,
        // Each of these starts its own daemon (own ports, own state dir) in its own worker.
        test: { name: 'integration', include: ['test/**/*.test.ts'], exclude: ['test/unit/**'] },
      },
    ],
  },
});
