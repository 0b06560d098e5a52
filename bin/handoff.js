#!/usr/bin/env node
// The `handoff` command: runs the compiled CLI (npm run build makes dist/).
import { main } from '../dist/cli/main.js';

main(process.argv.slice(2), process.env).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`handoff: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
