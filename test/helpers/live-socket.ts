import WebSocket from 'ws';
import { api, tryWs, waitFor } from './client.js';

/**
 * A raw screencast viewer (the protocol, not the page): JSON messages in, pictures ignored
 * except that they are acked so the stream keeps going. For tests of the viewer protocol.
 */
export class LiveSocket {
  readonly messages: any[] = [];
  state: any = null;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        const buf = data as Buffer;
        // Kind 2 ends a frame: ack it (docs/screencast-protocol.md).
        if (buf[0] === 2) ws.send(JSON.stringify({ type: 'ack', seq: buf.readUInt32BE(1) }));
        return;
      }
      const m = JSON.parse(data.toString());
      this.messages.push(m);
      if (m.type === 'state') this.state = m;
    });
  }

  /** Opens a fresh control (default) or view link of `sessionId` on the screencast transport. */
  static async open(base: string, sessionId: string, kind: 'control' | 'view' = 'control'): Promise<LiveSocket> {
    const link = await api(base, `/session/${sessionId}/live?kind=${kind}`);
    if (link.status !== 200) throw new Error(`no live link: ${JSON.stringify(link.body)}`);
    const url = `${link.body.url.replace(/^http/, 'ws')}/screencast`;
    let s: LiveSocket | undefined;
    const r = await tryWs(url, {}, (ws) => (s = new LiveSocket(ws)));
    if (r.kind !== 'open') throw new Error(`screencast refused: ${JSON.stringify(r)}`);
    await waitFor('the first state', () => s!.state);
    return s!;
  }

  send(m: object): void {
    this.ws.send(JSON.stringify(m));
  }

  click(x: number, y: number, button = 1): void {
    this.send({ type: 'pointer', x, y, buttons: 0 });
    this.send({ type: 'pointer', x, y, buttons: button });
    this.send({ type: 'pointer', x, y, buttons: 0 });
  }

  /** Waits for a message that `match` accepts (one already received counts). */
  next(what: string, match: (m: any) => boolean, timeoutMs = 20_000): Promise<any> {
    return waitFor(what, () => this.messages.find(match), timeoutMs, 20);
  }

  /** Sends `data` as the answer to file request `request`, in chunks. */
  sendFile(request: string, name: string, data: Buffer, chunk = 300_000): void {
    this.send({ type: 'file_start', request, name, size: data.length });
    for (let i = 0; i < data.length; i += chunk) this.send({ type: 'file_chunk', request, data: data.subarray(i, i + chunk).toString('base64') });
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const done = new Promise((r) => this.ws.once('close', r));
    this.ws.close();
    const kill = setTimeout(() => this.ws.terminate(), 2000);
    await done;
    clearTimeout(kill);
  }
}
