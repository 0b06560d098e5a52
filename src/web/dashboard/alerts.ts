// Calling the operator when an agent asks for help: a browser notification (permission asked on
// a click), a short sound that can be muted, and the tab title badge.
import { $ } from './format.js';
import type { SessionInfo } from './types.js';

const SOUND_STORAGE = 'handoff.sound';

let audio: AudioContext | null = null;
const notified = new Set<string>(); // handoff ids already called out

function soundOn(): boolean {
  return localStorage.getItem(SOUND_STORAGE) !== 'off';
}

function renderButtons(): void {
  const notify = $<HTMLButtonElement>('notify');
  const perm = 'Notification' in window ? Notification.permission : 'denied';
  notify.textContent = perm === 'granted' ? 'Notifications on' : perm === 'denied' ? 'Notifications blocked' : 'Notify me';
  notify.disabled = perm !== 'default';
  const sound = $<HTMLButtonElement>('sound');
  sound.textContent = soundOn() ? 'Sound on' : 'Sound off';
  sound.setAttribute('aria-pressed', String(soundOn()));
}

/** Wires the two buttons; the browser asks for permission only after this click. */
export function setUpAlerts(): void {
  $('notify').addEventListener('click', async () => {
    unlockAudio();
    if ('Notification' in window) await Notification.requestPermission().catch(() => 'denied');
    renderButtons();
  });
  $('sound').addEventListener('click', () => {
    localStorage.setItem(SOUND_STORAGE, soundOn() ? 'off' : 'on');
    unlockAudio();
    renderButtons();
  });
  renderButtons();
}

/** Browsers start audio only after a gesture: any click on these buttons unlocks it. */
function unlockAudio(): void {
  try {
    audio = audio || new AudioContext();
    void audio.resume();
  } catch {
    audio = null;
  }
}

function chime(): void {
  if (!soundOn()) return;
  try {
    audio = audio || new AudioContext();
    if (audio.state !== 'running') return;
    const t = audio.currentTime;
    for (const [i, freq] of [880, 1320].entries()) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = freq;
      gain.gain.setValueAtTime(0.0001, t + i * 0.18);
      gain.gain.exponentialRampToValueAtTime(0.2, t + i * 0.18 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t + i * 0.18 + 0.16);
      osc.connect(gain).connect(audio.destination);
      osc.start(t + i * 0.18);
      osc.stop(t + i * 0.18 + 0.17);
    }
  } catch {
    /* no audio here */
  }
}

/** Calls the operator once per new request for help; `open` focuses the session's card. */
export function helpRequested(s: SessionInfo, open: () => void): void {
  if (!s.handoff || notified.has(s.handoff.id)) return;
  notified.add(s.handoff.id);
  chime();
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  try {
    const n = new Notification(`Help requested: session ${s.session_id}`, { body: s.handoff.reason, tag: s.handoff.id });
    n.onclick = () => {
      window.focus();
      open();
      n.close();
    };
  } catch {
    /* some browsers only notify from a service worker */
  }
}

/** The tab title: the number of sessions asking for help, in front. */
export function titleBadge(asking: number): void {
  document.title = asking ? `(${asking}) handoff: help requested` : 'handoff';
}
