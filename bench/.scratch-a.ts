import { benchMemoryChanges, benchProfileResume, benchColdPhases } from './core.js';
const log = (s: string) => process.stdout.write(`bench: ${s}\n`);
const rows = [...(await benchProfileResume(log)), ...(await benchMemoryChanges(log)), ...(await benchColdPhases(log, 8)).rows];
for (const r of rows) console.log(`| ${r.figure} | ${r.handoff} | ${r.reference} | ${r.ratio} | ${r.target} | |`);
