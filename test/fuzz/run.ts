/**
 * `npm run fuzz [-- --inputs N] [-- target-name-part ...]`: the mutation loop over every target
 * (engine.ts), 1,000,000 inputs each by default, under nice. Writes the counts and findings to
 * bench/RESULTS.md ("Fuzzing") and each finding's input to test/fuzz/findings/ to replay.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fuzz, type FuzzResult } from './engine.js';
import { TARGETS } from './targets.js';
import { machine } from '../../bench/lib.js';

const args = process.argv.slice(2);
const at = args.indexOf('--inputs');
const inputs = at >= 0 ? Number(args[at + 1]) : 1_000_000;
const names = args.filter((a, i) => !a.startsWith('--') && !(at >= 0 && i === at + 1));
const chosen = TARGETS.filter((t) => !names.length || names.some((n) => t.name.includes(n)));

const results: FuzzResult[] = [];
for (const t of chosen) {
  process.stdout.write(`fuzz: ${t.name} (${t.seeds.length} seeds)...\n`);
  const r = await fuzz(t, { inputs, seed: 20261130 });
  results.push(r);
  process.stdout.write(`fuzz: ${t.name}: ${r.inputs} inputs in ${(r.ms / 1000).toFixed(1)} s, ${r.findings.length} findings\n`);
  for (const f of r.findings) process.stdout.write(`  ${f.kind}: ${f.message}\n`);
}

const dir = join(import.meta.dirname, 'findings');
if (results.some((r) => r.findings.length)) {
  mkdirSync(dir, { recursive: true });
  for (const r of results) for (const [i, f] of r.findings.entries()) writeFileSync(join(dir, `${r.target.replace(/\W+/g, '-')}-${i}.json`), JSON.stringify(f, null, 1) + '\n');
}

const rows = results.map(
  (r) => `| ${r.target} | ${r.inputs.toLocaleString('en')} | ${(r.ms / 1000).toFixed(1)} | ${Math.round((r.inputs / r.ms) * 1000).toLocaleString('en')} | ${r.findings.filter((f) => f.kind === 'crash').length} | ${r.findings.filter((f) => f.kind === 'hang').length} | ${r.findings.filter((f) => f.kind === 'invariant').length} |`,
);
let section = [
  '## Fuzzing (issue 10)',
  '',
  `Measured ${new Date().toISOString()} on ${machine()} with \`npm run fuzz\` (seed 20261130, nice 10, sharing the 2 cores with other work). Engine: the seeded mutation loop of test/fuzz/engine.ts over real captures (test/fuzz/capture.ts); fast-check properties run in \`npm test\` (test/fuzz/fuzz.test.ts). Jazzer.js does not load here (its addon needs glibc 2.38, Debian 12 has 2.36). A crash is an exception other than the target's one failure path, a hang an input over 1 s, an invariant a broken cap or contract.`,
  '',
  '| target | inputs | s | inputs/s | crashes | hangs | invariants |',
  '|---|---|---|---|---|---|---|',
  ...rows,
].join('\n');
process.stdout.write(section + '\n');

if (inputs >= 1_000_000 || args.includes('--write')) {
  const file = new URL('../../bench/RESULTS.md', import.meta.url);
  const previous = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmark results\n';
  const re = /## Fuzzing \(issue 10\)[\s\S]*?(?=\n## |$)/;
  // Rows of targets not run this time stay (`npm run fuzz -- cdp` reruns some).
  const kept = (re.exec(previous)?.[0] ?? '').split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| target') && !chosen.some((t) => l.startsWith(`| ${t.name} |`)));
  section = section.replace(/\n\| target[^\n]*\n\|---[^\n]*/, (h) => `${h}\n${kept.join('\n')}`.replace(/\n$/, ''));
  const next = re.test(previous) ? previous.replace(re, () => section + '\n') : `${previous.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, next);
  process.stdout.write('fuzz: wrote bench/RESULTS.md\n');
}
process.exit(results.some((r) => r.findings.length) ? 1 : 0);
