import { expect } from 'vitest';

/**
 * A strict reader of the Prometheus text format 0.0.4: every sample belongs to a family whose
 * HELP and TYPE came first, names and labels are well formed, no series twice, counters end
 * in _total, histograms have cumulative buckets ending in +Inf equal to _count.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
export interface Family {
  type: string;
  help: string;
  samples: Sample[];
}

export function parsePrometheus(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  let current: string | null = null;
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.slice(0, -1).split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line))) {
      if (families.has(m[1]!)) throw new Error(`family ${m[1]} declared twice`);
      families.set(m[1]!, { type: '', help: m[2]!, samples: [] });
      current = m[1]!;
    } else if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      if (m[1] !== current || families.get(current)!.type) throw new Error(`TYPE ${m[1]} not right after its HELP`);
      families.get(current)!.type = m[2]!;
    } else if ((m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line))) {
      const [, name, , body, value] = m;
      const fam: Family | undefined = current ? families.get(current) : undefined;
      if (!fam || !fam.type) throw new Error(`sample ${name} outside a family`);
      const base: string = fam.type === 'histogram' ? name!.replace(/_(bucket|sum|count)$/, '') : name;
      if (base !== current) throw new Error(`sample ${name} in family ${current}`);
      const labels: Record<string, string> = {};
      if (body) {
        const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(,|$)/y;
        let at = 0;
        while (at < body.length) {
          const l = re.exec(body);
          if (!l || l.index !== at) throw new Error(`bad labels in ${line}`);
          if (l[1]! in labels) throw new Error(`label ${l[1]} twice in ${line}`);
          labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
          at = re.lastIndex;
        }
      }
      const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
      if (seen.has(key)) throw new Error(`series twice: ${line}`);
      seen.add(key);
      const v = Number(value);
      if (Number.isNaN(v) && value !== 'NaN') throw new Error(`bad value in ${line}`);
      fam.samples.push({ name: name!, labels, value: v });
    } else {
      throw new Error(`not the Prometheus text format: ${JSON.stringify(line)}`);
    }
  }
  for (const [name, f] of families) {
    if (!f.type) throw new Error(`${name} has no TYPE`);
    if (f.type === 'counter') {
      expect(name, 'counters end in _total').toMatch(/_total$/);
      for (const s of f.samples) expect(s.value).toBeGreaterThanOrEqual(0);
    }
    if (f.type === 'histogram') {
      const series = new Map<string, Sample[]>();
      for (const s of f.samples.filter((x) => x.name.endsWith('_bucket'))) {
        const { le, ...rest } = s.labels;
        expect(le).toBeDefined();
        const k = JSON.stringify(rest);
        series.set(k, [...(series.get(k) ?? []), s]);
      }
      for (const [k, buckets] of series) {
        for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
        expect(buckets.at(-1)!.labels.le).toBe('+Inf');
        const count = f.samples.find((s) => s.name === `${name}_count` && JSON.stringify((({ le: _, ...r }) => r)(s.labels)) === k);
        expect(count?.value).toBe(buckets.at(-1)!.value);
      }
    }
  }
  return families;
}

export const value = (f: Map<string, Family>, name: string, labels: Record<string, string> = {}) =>
  (f.get(name) ?? f.get(name.replace(/_(bucket|sum|count)$/, '')))?.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

