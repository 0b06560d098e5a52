import { EventEmitter } from 'node:events';
import type { ConnectionTransport } from 'puppeteer-core';
import type { ChromiumBrowser } from '../../src/browser/chromium.js';
import type { CdpPipeMux } from '../../src/cdp/pipe-mux.js';

/**
 * A Chromium launched by ChromiumBrowser has no DevTools port (only its pipe): these give
 * tests and benches a client of their own on it, through an agent session of the pipe mux,
 * as the daemon gives one to each agent.
 */

/** For `puppeteer.connect({ transport })`. */
export async function pipeTransport(chromium: ChromiumBrowser<CdpPipeMux>): Promise<ConnectionTransport> {
  const channel = await chromium.cdp.openAgent();
  const transport: ConnectionTransport = {
    send: (message) => channel.send(JSON.parse(message)),
    close: () => {
      channel.close();
      transport.onclose?.();
    },
  };
  channel.onMessage = (data) => transport.onmessage?.(data.toString());
  channel.onLost = () => transport.onclose?.();
  return transport;
}

/** Shaped like bench/lib.ts RawCdp: send(method, params, sessionId), `ws` emits 'message'. */
export async function pipeCdp(chromium: ChromiumBrowser<CdpPipeMux>) {
  const channel = await chromium.cdp.openAgent();
  const ws = new EventEmitter();
  const pending = new Map<number, (m: any) => void>();
  let id = 0;
  channel.onMessage = (data) => {
    const text = data.toString();
    const m = JSON.parse(text);
    if (m.id !== undefined) {
      pending.get(m.id)?.(m);
      pending.delete(m.id);
    }
    ws.emit('message', Buffer.from(text));
  };
  return {
    ws,
    send(method: string, params: object = {}, sessionId?: string): Promise<any> {
      const n = ++id;
      return new Promise((resolve, reject) => {
        pending.set(n, (m) => (m.error ? reject(new Error(m.error.message)) : resolve(m.result)));
        channel.send({ id: n, method, params, ...(sessionId ? { sessionId } : {}) });
      });
    },
    async close() {
      channel.close();
    },
  };
}
