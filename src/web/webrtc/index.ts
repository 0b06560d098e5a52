// Entry of /assets/kit-webrtc.js: the client as window.HandoffWebRTC (the kit loads it on demand).
import { connect } from './client.js';

(window as unknown as { HandoffWebRTC: unknown }).HandoffWebRTC = { connect };
