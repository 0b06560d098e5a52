import { createHmac, randomUUID } from 'node:crypto';
import type { Logger } from './logger.js';

/**
 * The signature headers (the Stripe / Standard Webhooks convention): the receiver recomputes
 * HMAC-SHA256(secret, `${timestamp}.${rawBody}`) and rejects old timestamps (replays).
 */
export const WEBHOOK_HEADERS = {
  timestamp: 'x-handoff-timestamp',
  signature: 'x-handoff-signature',
  delivery: 'x-handoff-delivery',
} as const;

/** `sha256=HEX` over `TIMESTAMP.BODY`; `timestamp` is Unix seconds as sent in the header. */
export function webhookSignature(secret: string, timestamp: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export interface WebhookOptions {
  url: string;
  /** Signs every delivery when set; never logged. */
  secret: string | null;
  logger: Logger;
  timeoutMs?: number;
  attempts?: number;
  /** First retry delay; doubles per retry (with jitter). */
  backoffMs?: number;
  /** Pending events past this drop the oldest. */
  maxPending?: number;
}

export interface WebhookStats {
  ok: number;
  failed: number;
  dropped: number;
  pending: number;
}

/** One attempt's verdict: delivered, worth another try, or final. */
type Outcome = { kind: 'ok' } | { kind: 'retry' | 'fail'; why: string; status?: number };

/**
 * Delivers events to one URL, one at a time and in order, in the background: `send()` never
 * blocks and never throws. Each delivery gets `attempts` tries (only network errors, timeouts,
 * 5xx and 429 are retried), redirects are not followed, and a slow receiver only fills a
 * bounded queue whose oldest events are dropped.
 */
export class WebhookSender {
  private readonly queue: Record<string, unknown>[] = [];
  private readonly counts = { ok: 0, failed: 0, dropped: 0 };
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private readonly backoffMs: number;
  private readonly maxPending: number;
  /** Aborts the in-flight request and any backoff wait when close() gives up. */
  private readonly stop = new AbortController();
  /** For logs: the URL's path and query may carry a token (Slack-style hooks), so only the origin. */
  private readonly target: string;
  private draining?: Promise<void>;
  private closed = false;
  private closing?: Promise<void>;

  constructor(private readonly o: WebhookOptions) {
    this.timeoutMs = o.timeoutMs ?? 5000;
    this.attempts = o.attempts ?? 3;
    this.backoffMs = o.backoffMs ?? 1000;
    this.maxPending = o.maxPending ?? 1000;
    const url = URL.canParse(o.url) ? new URL(o.url) : null;
    if (!url || !/^https?:$/.test(url.protocol)) throw new Error('--webhook must be an http:// or https:// URL');
    this.target = url.origin;
  }

  send(event: Record<string, unknown>): void {
    if (this.closed) return;
    if (this.queue.length >= this.maxPending) {
      const old = this.queue.shift()!;
      this.counts.dropped++;
      this.o.logger.warn('webhook queue full: dropped the oldest event', { target: this.target, type: old.type, pending: this.queue.length });
    }
    this.queue.push(event);
    this.draining ??= this.drain().finally(() => (this.draining = undefined));
  }

  stats(): WebhookStats {
    return { ...this.counts, pending: this.queue.length };
  }

  /**
   * Stops taking events and gives what is queued `graceMs` to go out; then aborts the
   * delivery in flight and drops the rest (counted). Idempotent.
   */
  close(graceMs = 2000): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      if (this.draining) {
        let timer: NodeJS.Timeout | undefined;
        const late = await Promise.race([this.draining.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs)))]);
        clearTimeout(timer);
        if (late) {
          const n = this.queue.length;
          this.queue.length = 0;
          this.counts.dropped += n;
          this.stop.abort();
          await this.draining;
          this.o.logger.warn('webhook deliveries abandoned at shutdown', { target: this.target, dropped: n });
        }
      }
    })();
    return this.closing;
  }

  private async drain(): Promise<void> {
    for (let event = this.queue.shift(); event; event = this.queue.shift()) {
      const delivered = await this.deliver(event);
      this.counts[delivered ? 'ok' : 'failed']++;
    }
  }

  private async deliver(event: Record<string, unknown>): Promise<boolean> {
    const body = JSON.stringify(event);
    const delivery = randomUUID();
    for (let attempt = 1; ; attempt++) {
      const r = await this.attempt(body, delivery);
      if (r.kind === 'ok') return true;
      const last = r.kind === 'fail' || attempt >= this.attempts || this.stop.signal.aborted;
      this.o.logger.warn(last ? 'webhook delivery failed' : 'webhook delivery failed, will retry', {
        target: this.target,
        type: event.type,
        delivery,
        attempt,
        error: r.why,
        ...(r.status ? { status: r.status } : {}),
      });
      if (last) return false;
      // Exponential backoff with jitter: 1 s, 2 s, ... (+-25%).
      if (!(await this.sleep(this.backoffMs * 2 ** (attempt - 1) * (0.75 + Math.random() / 2)))) return false;
    }
  }

  private async attempt(body: string, delivery: string): Promise<Outcome> {
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'handoff-webhook',
      [WEBHOOK_HEADERS.delivery]: delivery,
    };
    // Signed per attempt, so a retry carries a fresh timestamp that passes the receiver's window.
    if (this.o.secret) {
      const ts = String(Math.floor(Date.now() / 1000));
      headers[WEBHOOK_HEADERS.timestamp] = ts;
      headers[WEBHOOK_HEADERS.signature] = webhookSignature(this.o.secret, ts, body);
    }
    // One controller per attempt, aborted by its own timer or by close() (AbortSignal.any
    // would tie every attempt's signal to the long-lived stop signal).
    const attempt = new AbortController();
    const timer = setTimeout(() => attempt.abort(new DOMException('timeout', 'TimeoutError')), this.timeoutMs);
    const onStop = () => attempt.abort(this.stop.signal.reason);
    this.stop.signal.addEventListener('abort', onStop, { once: true });
    try {
      const res = await fetch(this.o.url, { method: 'POST', headers, body, redirect: 'manual', signal: attempt.signal });
      // The answer's body is not ours to read; release the connection.
      await res.body?.cancel().catch(() => {});
      if (res.status >= 200 && res.status < 300) return { kind: 'ok' };
      if (res.status >= 300 && res.status < 400) return { kind: 'fail', why: 'answered a redirect (not followed)', status: res.status };
      if (res.status >= 500 || res.status === 429) return { kind: 'retry', why: 'answered an error', status: res.status };
      return { kind: 'fail', why: 'answered an error', status: res.status };
    } catch (e) {
      const err = e as Error & { cause?: { code?: string } };
      const why = err.name === 'TimeoutError' ? `no answer within ${this.timeoutMs} ms` : (err.cause?.code ?? err.message).slice(0, 200);
      return { kind: 'retry', why };
    } finally {
      clearTimeout(timer);
      this.stop.signal.removeEventListener('abort', onStop);
    }
  }

  /** Resolves false when close() aborted the wait. */
  private sleep(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.stop.signal.aborted) return resolve(false);
      const onAbort = () => {
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        this.stop.signal.removeEventListener('abort', onAbort);
        resolve(true);
      }, ms);
      this.stop.signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}
