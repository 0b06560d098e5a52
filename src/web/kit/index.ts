/*
 * handoff viewer kit (API.md 5), served as /hitl-kit.js: a drop-in live viewer for a handoff session.
 *
 *   <script src="http://HOST/hitl-kit.js"></script>
 *   const viewer = HandoffKit.mount(element, { url: 'http://HOST/live/TOKEN', transport: 'screencast' });
 *   viewer.on('state', (s) => console.log(s.state));   // also a `handoff-state` event on element
 *   viewer.setTransport('vnc'); viewer.disconnect();
 *
 * Public DOM hooks: the viewer root has data-handoff-state (connecting, live, view-only, ended,
 * expired, error) and data-transport; the drawing surface has data-handoff-surface.
 * Give `element` a size: the picture is scaled to fit it, keeping its aspect ratio.
 * Screencast speaks docs/screencast-protocol.md. WebRTC loads the daemon's /assets/kit-webrtc.js
 * (once per page) and falls back to the screencast, saying so, when it cannot connect; VNC and
 * WebRTC ask for their credentials in the page unless `password` (and `username`) are given.
 * Nothing here touches the DOM until mount() is called.
 */
import { mount } from './viewer.js';
import { backoffDelay, keysymOf, liveEndpoints, parseTile, rfbButtons, toFramebuffer, wheelStep } from './util.js';

const global = (typeof window !== 'undefined' ? window : globalThis) as unknown as Record<string, unknown>;
global.HandoffKit = {
  mount,
  util: { keysymOf, toFramebuffer, rfbButtons, wheelStep, backoffDelay, parseTile, liveEndpoints },
};
