/**
 * The seeded mutation loop (Jazzer.js would be the engine of choice, but its prebuilt addon
 * needs glibc 2.38 and this Debian 12 has 2.36, so it does not load): deterministic from a
 * seed number, AFL-style byte mutations plus splicing between real captures, and a finding for
 * every input that throws what the target does not expect, takes more than a second, or leaves
 * the target over its memory cap. fast-check covers the structure-aware side (fuzz.test.ts).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface Target {
  name: string;
  /** Real captures (and a few hand-made inputs); each seed is a list of chunks or messages. */
  seeds: Buffer[][];
  /** Runs one input; throws only what `expected` accepts. Returns an error text for a broken invariant. */
  run(input: Buffer[], rng: Rng): string | void | Promise<string | void>;
  /** An error the target may throw for bad input (its one documented failure path). */
  expected(e: unknown): boolean;
}

export interface Finding {
  target: string;
  kind: 'crash' | 'hang' | 'invariant';
  message: string;
  /** The input, base64 per chunk, to replay in a test. */
  input: string[];
}

export interface FuzzResult {
  target: string;
  inputs: number;
  ms: number;
  findings: Finding[];
}

export const HANG_MS = 1000;

/** mulberry32: small, fast, good enough for choosing mutations. */
export class Rng {
  constructor(private s: number) {}
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
}

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff];
const TOKENS = ['"', '{', '}', '[', ']', ':', ',', 'null', 'true', '-1', '1e999', '"sessionId":"', '"id":', '"method":', '\u0000', '\\u0000', '\\', '%', '&', '='].map((t) => Buffer.from(t));

/** One to four stacked mutations of one chunk, sometimes with a piece of another seed. */
export function mutateChunk(b: Buffer, rng: Rng, donor: Buffer): Buffer {
  let out = Buffer.from(b);
  for (let n = 1 + rng.int(4); n > 0; n--) {
    const at = out.length ? rng.int(out.length) : 0;
    switch (rng.int(10)) {
      case 0: // bit flip
        if (out.length) out[at]! ^= 1 << rng.int(8);
        break;
      case 1: // random byte
        if (out.length) out[at] = rng.int(256);
        break;
      case 2: {
        // interesting integer, 1, 2 or 4 bytes, either endianness
        const v = rng.pick(INTERESTING);
        const w = rng.pick([1, 2, 4]);
        if (at + w <= out.length) {
          if (w === 1) out[at] = v & 0xff;
          else if (w === 2) out.writeUInt16BE(v & 0xffff, at);
          else out.writeUInt32BE(v >>> 0, at);
        }
        break;
      }
      case 3: // delete a run
        out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + rng.int(16))]);
        break;
      case 4: // duplicate a run
        out = Buffer.concat([out.subarray(0, at), out.subarray(at, at + 1 + rng.int(64)), out.subarray(at)]);
        break;
      case 5: // insert random bytes
        out = Buffer.concat([out.subarray(0, at), Buffer.from(Array.from({ length: 1 + rng.int(8) }, () => rng.int(256))), out.subarray(at)]);
        break;
      case 6: // a token of the formats we parse
        out = Buffer.concat([out.subarray(0, at), rng.pick(TOKENS), out.subarray(at)]);
        break;
      case 7: {
        // splice with another seed
        const from = donor.length ? rng.int(donor.length) : 0;
        out = Buffer.concat([out.subarray(0, at), donor.subarray(from, from + 1 + rng.int(256)), out.subarray(at + rng.int(8))]);
        break;
      }
      case 8: // truncate
        out = out.subarray(0, at);
        break;
      default: // swap two bytes
        if (out.length > 1) {
          const j = rng.int(out.length);
          [out[at], out[j]] = [out[j]!, out[at]!];
        }
    }
  }
  return out;
}

/** A seed with some chunks mutated, some dropped or repeated. */
export function mutate(seed: Buffer[], rng: Rng, all: Buffer[][]): Buffer[] {
  const donor = rng.pick(rng.pick(all)) ?? Buffer.alloc(0);
  const out = seed.slice();
  const edits = 1 + rng.int(3);
  for (let i = 0; i < edits && out.length; i++) {
    const at = rng.int(out.length);
    const r = rng.int(10);
    if (r < 7) out[at] = mutateChunk(out[at]!, rng, donor);
    else if (r === 7) out.splice(at, 1);
    else if (r === 8) out.splice(at, 0, out[at]!);
    else out.splice(at, 0, donor);
  }
  return out;
}

/** One input through the target: null, or what went wrong. */
async function runOne(t: Target, input: Buffer[], rng: Rng): Promise<Omit<Finding, 'target' | 'input'> | null> {
  try {
    const r = t.run(input, rng);
    const broken = r instanceof Promise ? await r : r;
    return broken ? { kind: 'invariant', message: broken } : null;
  } catch (e) {
    return t.expected(e) ? null : { kind: 'crash', message: (e as Error)?.stack?.split('\n').slice(0, 3).join(' | ') ?? String(e) };
  }
}

/** Runs `inputs` mutated inputs against a target (all seeds first, unmutated). */
export async function fuzz(t: Target, opts: { inputs: number; seed?: number; maxMs?: number; maxFindings?: number }): Promise<FuzzResult> {
  const rng = new Rng(opts.seed ?? 1);
  const findings: Finding[] = [];
  const seen = new Set<string>();
  const start = performance.now();
  let n = 0;
  for (; n < opts.inputs; n++) {
    if (opts.maxMs !== undefined && (n & 63) === 0 && performance.now() - start > opts.maxMs) break;
    const input = n < t.seeds.length ? t.seeds[n]! : mutate(rng.pick(t.seeds), rng, t.seeds);
    // Wall time first (cheap); an input over the limit is run again and judged on CPU time: on
    // a shared, loaded machine a process can wait seconds for a core. process.cpuUsage() is a
    // syscall, too dear to pay on every input of a million.
    const t0 = performance.now();
    let problem = await runOne(t, input, rng);
    if (!problem && performance.now() - t0 > HANG_MS) {
      const c0 = process.cpuUsage();
      problem = await runOne(t, input, rng);
      const cpu = process.cpuUsage(c0);
      const ms = (cpu.user + cpu.system) / 1000;
      if (!problem && ms > HANG_MS) problem = { kind: 'hang', message: `${ms.toFixed(0)} ms of CPU` };
    }
    if (problem) {
      // One finding per distinct message (the first input that showed it).
      // Keyed by the error's type and where it was thrown, not its text (positions vary).
      const parts = problem.kind === 'hang' ? ['hang'] : problem.message.split(' | ');
      const key = `${problem.kind}:${parts[0]!.split(':')[0]}:${parts[1] ?? parts[0]}`;
      if (!seen.has(key)) {
        seen.add(key);
        findings.push({ target: t.name, ...problem, input: input.map((c) => c.toString('base64')) });
        if (findings.length >= (opts.maxFindings ?? 20)) break;
      }
    }
  }
  return { target: t.name, inputs: n, ms: performance.now() - start, findings };
}

/** The seed files whose names start with `prefix` (see capture.ts for the format). */
export function loadSeeds(prefix: string): Buffer[][] {
  const dir = join(import.meta.dirname, 'seeds');
  return readdirSync(dir)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.json'))
    .sort()
    .map((f) => (JSON.parse(readFileSync(join(dir, f), 'utf8')) as string[]).map((s) => Buffer.from(s, 'base64')));
}
