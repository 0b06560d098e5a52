import type { WebSocket } from 'ws';

/**
 * Keepalive for a `ws` socket (L4: every live viewer socket), like agent sockets': a ping
 * every keepaliveMs/2, and a peer silent (no pong, no message) for keepaliveMs is terminated,
 * so a viewer that vanished without a FIN (host gone, process stopped) gives back its place,
 * its control and the handoff its link started.
 */
export function keepAlive(ws: WebSocket, keepaliveMs: number): void {
  let lastHeard = Date.now();
  const heard = () => (lastHeard = Date.now());
  ws.on('pong', heard);
  ws.on('message', heard);
  const timer = setInterval(() => {
    if (Date.now() - lastHeard > keepaliveMs) return ws.terminate();
    try {
      ws.ping();
    } catch {
      ws.terminate();
    }
  }, Math.max(100, Math.floor(keepaliveMs / 2)));
  timer.unref();
  ws.once('close', () => clearInterval(timer));
}
