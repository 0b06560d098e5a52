import type { Session } from './session.js';

/** What an agent may not do while a human has control (API.md 7): input and navigation. */
const HELD_METHOD = /^(Input\.[A-Za-z]+|Page\.navigate|Page\.reload|Page\.navigateToHistoryEntry)$/;
/** An agent loop that keeps sending while it waits gets errors past this many held commands. */
export const MAX_HELD_COMMANDS = 1000;

/**
 * Holds one agent connection's input and navigation commands while a human has control in
 * an active handoff (on any of its CDP sessions), and sends them to the browser, in order,
 * when the handoff ends, so an agent loop cannot fight the human's mouse or navigate the page
 * away. Everything else passes at once. Once something is held, later input waits behind it
 * (order) until the handoff ends, even if the human stepped away meanwhile.
 */
export class AgentInputHold {
  private queue: unknown[] = [];
  private readonly release = () => {
    const held = this.queue;
    this.queue = [];
    for (const cmd of held) this.forward(cmd);
  };

  constructor(
    private readonly session: Session,
    /** Sends a command on to the browser as if it had just arrived. */
    private readonly forward: (cmd: unknown) => void,
    /** Answers the agent directly (a refusal past MAX_HELD_COMMANDS). */
    private readonly reply: (message: object) => void,
  ) {
    session.on('handoffCompleted', this.release);
  }

  /** True when the command was taken (held or refused): it must not reach the browser now. */
  take(cmd: { id?: unknown; method?: unknown; sessionId?: unknown }): boolean {
    if (typeof cmd?.method !== 'string' || !HELD_METHOD.test(cmd.method)) return false;
    if (!this.session.holdsAgentInput && this.queue.length === 0) return false;
    if (this.queue.length >= MAX_HELD_COMMANDS) {
      const on = typeof cmd.sessionId === 'string' ? { sessionId: cmd.sessionId } : {};
      this.reply({ id: cmd.id, error: { code: -32000, message: `a human has control: at most ${MAX_HELD_COMMANDS} input commands are held until the handoff ends` }, ...on });
      return true;
    }
    this.queue.push(cmd);
    this.session.countHeldCommand();
    return true;
  }

  /** The agent left: what it sent is dropped with its connection. */
  close(): void {
    this.session.off('handoffCompleted', this.release);
    this.queue = [];
  }
}
