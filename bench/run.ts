/** `npm run bench`: side-by-side measurements, written to bench/RESULTS.md. */
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { benchCore, type Row } from './core.js';

const log = (s: string) => process.stdout.write(`bench: ${s}\n`);

function table(rows: Row[]): string {
  const lines = ['| figure | handoff | reference | ratio | target | met |', '|---|---|---|---|---|---|'];
  for (const r of rows) lines.push(`| ${r.figure} | ${r.handoff} | ${r.reference} | ${r.ratio} | ${r.target} | ${r.ok === null ? '' : r.ok ? 'yes' : 'NO'} |`);
  return lines.join('\n');
}

const sections: string[] = [];
const core = await benchCore(log);
sections.push(
  '## Daemon core (issue 2)\n\nReference: the same Chromium reached directly on its own DevTools socket (round trips, screenshots); ' +
    'a plain `chromium --headless=new` spawned and connected the same way (session creation).\n\n' +
    table(core),
);
const header = `# Benchmark results\n\nMachine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, ${new Date().toISOString()}.\nRegenerate with \`npm run bench\`.\n`;
writeFileSync(new URL('./RESULTS.md', import.meta.url), `${header}\n${sections.join('\n\n')}\n`);
log('wrote bench/RESULTS.md');
for (const s of sections) process.stdout.write(s + '\n');
