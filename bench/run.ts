/** `npm run bench`: side-by-side measurements, written to bench/RESULTS.md. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { benchCore, benchSessions, type Row } from './core.js';
import { machine } from './lib.js';
import { benchVnc } from './vnc.js';
import { benchScreencast } from './screencast.js';
import { benchInputLatency } from './input-latency.js';
import { benchWebRtc } from './webrtc.js';
import { benchMcp } from './mcp.js';
import { benchAgentVanish } from './agent-vanish.js';
import { benchSecurity } from './security.js';
import { benchLoad } from './load.js';
import { benchFleet } from './fleet.js';

const log = (s: string) => process.stdout.write(`bench: ${s}\n`);

function table(rows: Row[]): string {
  const lines = ['| figure | handoff | reference | ratio | target | met |', '|---|---|---|---|---|---|'];
  for (const r of rows) lines.push(`| ${r.figure} | ${r.handoff} | ${r.reference} | ${r.ratio} | ${r.target} | ${r.ok === null ? '' : r.ok ? 'yes' : 'NO'} |`);
  return lines.join('\n');
}

const SUITES: { name: string; title: string; note: string; run: (log: (s: string) => void) => Promise<Row[]> }[] = [
  {
    name: 'core',
    title: 'Daemon core (issue 2)',
    note: 'Reference: a second headful Chromium with the session flags and a TCP DevTools port instead of the pipe, on its own Xvfb of the same size, launched and measured in the same run (round trips, screenshots); a plain `chromium --headless=new` spawned and connected the same way (session creation).',
    run: benchCore,
  },
  {
    name: 'sessions',
    title: 'Sessions: memory, start, profiles (issue 14)',
    note: 'Memory changes: bare Xvfb + Chromium with the session flags before and after each change, best of 2, 20 s after start (under load Chromium is not idle sooner). Cold phases: the sandboxed parts a session starts, started alone. Create latency: through the daemon at one create per second. Idle memory: the daemon\'s own sessions (sandbox processes included).',
    run: benchSessions,
  },
  {
    name: 'vnc',
    title: 'VNC server (issue 3)',
    note: 'Reference: x11vnc on the same Xvfb display, same client and encoding, same run.',
    run: benchVnc,
  },
  {
    name: 'screencast',
    title: 'Screencast (issue 4)',
    note: 'Reference: CDP `Page.startScreencast` at the same quality on the same animating page, same run. Viewers take atlas frames as the viewer kit does, except the tiles row. The 1-viewer figures are from the median of five 6 s windows by daemon CPU. The slow viewer goes through a TCP proxy that forwards 2 Mbit/s (bench/screencast.ts); frame age is from reading the pixels to the ack. Input to screen is measured in a headless Chromium running the viewer against the daemon.',
    run: async (log) => [...(await benchScreencast(log)), ...(await benchInputLatency(log))],
  },
  {
    name: 'webrtc',
    title: 'WebRTC (issue 5)',
    note: 'Reference: the same encode fed by the framebuffer piped in as rawvideo (encoder row); frames out of the encoder (fps rows).',
    run: benchWebRtc,
  },
  {
    name: 'security',
    title: 'Security (issue 8)',
    note: 'Reference: GET /health on a fresh connection to the same daemon, same run.',
    run: benchSecurity,
  },
  {
    name: 'agents',
    title: 'Vanished agents (issue 15)',
    note: 'A real Puppeteer process attached to a session is SIGKILLed; the session is polled over REST every 5 ms until its attachment is none. Default --agent-keepalive (10 s).',
    run: (log) => benchAgentVanish(log),
  },
  {
    name: 'mcp',
    title: 'MCP (issue 15)',
    note: 'Reference: the REST long poll GET /session/ID/wait for the same handoff outcome, same run. Each sample is a call ending on the daemon\'s 1 s handoff timeout, minus that second.',
    run: (log) => benchMcp(log),
  },
  {
    name: 'load',
    title: 'Load (issue 10)',
    note: 'Real daemon, real sockets, in a network namespace of the bench\'s own where 10.211.0.0/24 is local, so clients come from several addresses as real ones would (all of loopback is one source for the caps of 64 open connections per source): attach racers are raw WebSocket agents on /devtools/browser/ID, spread over 4 addresses and all from one; the 500 REST clients each hold one keep-alive connection, 50 per address. Idle sessions: --max-sessions 200, created 4 at a time until one fails to start, under 3 GB of memory is left, or LOAD_IDLE_MINUTES (the 2 cores and the memory are shared with other work).',
    run: benchLoad,
  },
  {
    name: 'fleet',
    title: 'Fleet behind HAProxy (issue 16)',
    note: 'Reference: the same requests straight to a host, same run: two hosts on 127.0.0.2 and 127.0.0.3 behind HAProxy 2.6 on 127.0.0.1 (deploy/haproxy/haproxy.cfg, addresses replaced); creation samples alternate between the balancer and a host, round trips go to two sessions on the same host.',
    run: benchFleet,
  },
];

// `npm run bench -- vnc screencast` runs only those; the other sections of RESULTS.md stay.
const only = process.argv.slice(2);
const file = new URL('./RESULTS.md', import.meta.url);
const previous = existsSync(file) ? readFileSync(file, 'utf8') : '';
const sections: string[] = [];
for (const suite of SUITES) {
  if (only.length && !only.includes(suite.name)) {
    const kept = new RegExp(`## ${suite.title.replace(/[()]/g, '\\$&')}[\\s\\S]*?(?=\\n## |$)`).exec(previous);
    if (kept) sections.push(kept[0].trim());
    continue;
  }
  log(`${suite.title}...`);
  const rows = await suite.run(log);
  sections.push(`## ${suite.title}\n\nMeasured ${new Date().toISOString()} on ${machine()}. ${suite.note}\n\n${table(rows)}`);
  process.stdout.write(sections.at(-1) + '\n');
}
// Sections other commands write (npm run fuzz, npm run soak) stay as they are.
for (const m of previous.matchAll(/\n## ([^\n]+)[\s\S]*?(?=\n## |$)/g)) if (!SUITES.some((s) => s.title === m[1])) sections.push(m[0].trim());
const header = `# Benchmark results\n\nEach section names the machine it was measured on: these VMs differ from day to day, and a\nfigure bound by the kernel (the daemon stop) can differ several times between hosts.\nRegenerate with \`npm run bench\` (or \`npm run bench -- core vnc screencast webrtc\` for some).\n`;
writeFileSync(file, `${header}\n${sections.join('\n\n')}\n`);
log('wrote bench/RESULTS.md');
