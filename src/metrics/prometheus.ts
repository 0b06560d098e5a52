/**
 * The Prometheus text format (version 0.0.4), just what handoff needs: counters and histograms
 * with labels, gauges read at scrape time. Label values come from a bounded set per metric
 * (LABEL_VALUES_MAX; past it, "other") so nothing a client sends can grow the series count.
 */

export type Labels = Record<string, string>;

/** Distinct label sets per metric, at most; more fold into {..="other"}. */
export const LABEL_VALUES_MAX = 32;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(l: Labels): string {
  const keys = Object.keys(l);
  return keys.length ? `{${keys.map((k) => `${k}="${escapeLabel(l[k]!)}"`).join(',')}}` : '';
}

/** A free-text reason as a short label value: `browser crashed` -> `browser_crashed`. */
export function labelValue(v: unknown): string {
  const s = typeof v === 'string' ? v.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '').slice(0, 40) : '';
  return s || 'unknown';
}

abstract class Family {
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  abstract render(out: string[]): void;
}

export class Counter extends Family {
  private readonly values = new Map<string, { labels: Labels; value: number }>();

  constructor(name: string, help: string, initial: Labels[] = [], private readonly maxSeries = LABEL_VALUES_MAX) {
    super(name, help);
    for (const l of initial) this.inc(l, 0);
  }

  /** Forgets the series whose labels match (a session that is gone). */
  remove(match: (l: Labels) => boolean): void {
    for (const [k, v] of this.values) if (match(v.labels)) this.values.delete(k);
  }

  inc(labels: Labels = {}, by = 1): void {
    let key = labelText(labels);
    if (!this.values.has(key) && this.values.size >= this.maxSeries) {
      labels = Object.fromEntries(Object.keys(labels).map((k) => [k, 'other']));
      key = labelText(labels);
    }
    const v = this.values.get(key);
    if (v) v.value += by;
    else this.values.set(key, { labels, value: by });
  }

  get(labels: Labels = {}): number {
    return this.values.get(labelText(labels))?.value ?? 0;
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`);
    for (const [key, v] of this.values) out.push(`${this.name}${key} ${v.value}`);
  }
}

export class Histogram extends Family {
  private readonly series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();

  constructor(
    name: string,
    help: string,
    private readonly buckets: number[],
    private readonly maxSeries = LABEL_VALUES_MAX,
  ) {
    super(name, help);
  }

  /** Forgets the series whose labels match (a session that is gone). */
  remove(match: (l: Labels) => boolean): void {
    for (const [k, v] of this.series) if (match(v.labels)) this.series.delete(k);
  }

  observe(value: number, labels: Labels = {}): void {
    const key = labelText(labels);
    let s = this.series.get(key);
    if (!s) {
      if (this.series.size >= this.maxSeries) return this.observe(value, Object.fromEntries(Object.keys(labels).map((k) => [k, 'other'])));
      s = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    this.buckets.forEach((b, i) => value <= b && s!.counts[i]!++);
    s.sum += value;
    s.count++;
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`);
    for (const s of this.series.values()) {
      this.buckets.forEach((b, i) => out.push(`${this.name}_bucket${labelText({ ...s.labels, le: String(b) })} ${s.counts[i]}`));
      out.push(`${this.name}_bucket${labelText({ ...s.labels, le: '+Inf' })} ${s.count}`);
      out.push(`${this.name}_sum${labelText(s.labels)} ${s.sum}`, `${this.name}_count${labelText(s.labels)} ${s.count}`);
    }
  }
}

/** A gauge (or a counter kept elsewhere) read when scraped. */
export class Sampled extends Family {
  constructor(
    name: string,
    help: string,
    private readonly type: 'gauge' | 'counter',
    private readonly read: () => [Labels, number][],
  ) {
    super(name, help);
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`);
    for (const [l, v] of this.read()) out.push(`${this.name}${labelText(l)} ${v}`);
  }
}

export class MetricsRegistry {
  private readonly families: Family[] = [];

  add<F extends Family>(f: F): F {
    this.families.push(f);
    return f;
  }

  gauge(name: string, help: string, read: () => [Labels, number][] | number): Sampled {
    return this.add(new Sampled(name, help, 'gauge', () => {
      const v = read();
      return typeof v === 'number' ? [[{}, v]] : v;
    }));
  }

  sampledCounter(name: string, help: string, read: () => [Labels, number][] | number): Sampled {
    return this.add(new Sampled(name, help, 'counter', () => {
      const v = read();
      return typeof v === 'number' ? [[{}, v]] : v;
    }));
  }

  render(): string {
    const out: string[] = [];
    for (const f of this.families) f.render(out);
    return out.join('\n') + '\n';
  }
}
