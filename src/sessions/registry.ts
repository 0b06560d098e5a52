import { randomUUID } from 'node:crypto';
import { HandoffError } from '../util/errors.js';
import { Session, type SessionDeps, type SessionInfo } from './session.js';
import { AttachmentLease, type AgentSlot } from './attachment.js';
import type { SessionParams } from './params.js';
import { vncPasswordsCollide } from '../liveview/vnc/des.js';
import { requireFreeSpace } from '../util/disk.js';
import type { ProfileClaim } from '../profiles/store.js';
import { WarmPool, type SpareLease } from './warm-pool.js';

/** How long after a spare-served session is ready the pool starts the next spare. */
const REFILL_DELAY_MS = 250;

/**
 * All sessions of the daemon, by id. The only place that creates sessions, so the session
 * limit and the VNC password uniqueness are checked in one synchronous step.
 */
export class SessionRegistry {
  private readonly sessions = new Map<string, Session>();
  /** Each session's lease: agents attach through here only (the closing and audit checks). */
  private readonly leases = new WeakMap<Session, AttachmentLease>();
  private readonly listeners = new Set<(s: Session) => void>();
  private closing = false;
  /** Spare sessions for default-size creates (--warm); filling starts with startWarmPool(). */
  readonly warm: WarmPool;

  constructor(private readonly deps: SessionDeps) {
    this.warm = new WarmPool({ ...deps, room: () => deps.config.maxSessions - this.liveCount() });
  }

  /** Once the browser policy is written: spares start from then on. */
  startWarmPool(): void {
    this.warm.start();
  }

  get(id: string): Session | undefined {
    return this.sessions.get(id);
  }

  /** Live sessions first, then the stopped ones still remembered. */
  list(): Session[] {
    this.forgetOld();
    return [...this.sessions.values()];
  }

  liveCount(): number {
    let n = 0;
    for (const s of this.sessions.values()) if (s.live) n++;
    return n;
  }

  /** A stopped session known only from the database (a previous daemon's, say). */
  stoppedInfo(id: string): SessionInfo | null {
    return this.deps.journal.loadSession(id, this.deps.config.stoppedRetentionS) as SessionInfo | null;
  }

  /**
   * Attaches an agent to session `id`, creating it if it is unknown or stopped. Synchronous up
   * to the returned promise, so concurrent connects race on the lease, not on the await.
   */
  attachAgent(
    id: string | undefined,
    makeParams: () => SessionParams,
    autoClose: (existing: Session | undefined) => boolean,
  ): { session: Session; created: boolean; slot: AgentSlot } {
    if (this.closing) throw new HandoffError('shutting_down', 'the daemon is shutting down');
    this.requireAudit();
    const existing = id ? this.sessions.get(id) : undefined;
    if (existing?.live) {
      const slot = this.takeAgentSlot(existing);
      existing.autoClose = autoClose(existing);
      return { session: existing, created: false, slot };
    }
    const params = makeParams();
    // A stopped id resumed without `profile` runs on the profile it had (its login, its tabs).
    if (id && !params.profile) params.profile = this.lastProfileOf(id, existing);
    const session = this.create(id ?? randomUUID(), params, autoClose(undefined));
    return { session, created: true, slot: this.takeAgentSlot(session) };
  }

  /**
   * Attaches an agent to a session that must exist and run (a page socket, a debug port):
   * 409 session_attached when anyone is attached (API.md 3.4).
   */
  attachAgentTo(session: Session): AgentSlot {
    if (this.closing) throw new HandoffError('shutting_down', 'the daemon is shutting down');
    this.requireAudit(); // no attach without its audit row
    if (!session.live || this.sessions.get(session.id) !== session) throw new HandoffError('session_not_found', 'the session has ended');
    return this.takeAgentSlot(session);
  }

  private takeAgentSlot(session: Session): AgentSlot {
    const lease = this.leases.get(session)!;
    const slot = lease.tryAttachAgent();
    if (!slot) throw new HandoffError('session_attached', `session ${session.id} is already attached`, { attachment: lease.attachment });
    return slot;
  }

  /** Creates a session with nobody attached (Cloudflare-style POST). */
  create(id: string, params: SessionParams, autoClose: boolean): Session {
    if (this.closing) throw new HandoffError('shutting_down', 'the daemon is shutting down');
    this.requireAudit();
    const existing = this.sessions.get(id);
    if (existing?.live) throw new HandoffError('bad_request', `session ${id} already exists`);
    if (this.liveCount() >= this.deps.config.maxSessions) {
      throw new HandoffError('too_many_sessions', `the daemon runs at most ${this.deps.config.maxSessions} sessions`);
    }
    if (params.enableVnc && params.vncPassword) this.checkVncPassword(params.vncPassword);
    requireFreeSpace(this.deps.config.stateDir, this.deps.config.minFreeMb); // 507 below the floor (README "Disk")
    // Synchronous: of two concurrent creates on one profile exactly one gets it (409 for the other).
    const profile = params.profile ? this.claimProfile(params.profile, id) : null;
    // A spare if one can serve; else at the limit a spare makes room (README "The warm pool").
    const spare: SpareLease | null = this.warm.serves(params) ? this.warm.take(id) : null;
    if (!spare && this.liveCount() + this.warm.held >= this.deps.config.maxSessions) this.warm.giveUp();
    const lease = new AttachmentLease();
    let session: Session;
    try {
      session = new Session(id, params, autoClose, this.deps, lease, profile, spare);
    } catch (e) {
      void profile?.claim.release(); // never a profile held by a session that does not exist
      spare?.release();
      throw e;
    }
    this.leases.set(session, lease);
    this.sessions.set(id, session);
    session.once('ended', () => this.warm.refill());
    // Shortly after the session is up, so its agent's first commands do not queue behind a browser start.
    if (spare) session.ready.then(() => setTimeout(() => this.warm.refill(), REFILL_DELAY_MS).unref(), () => {});
    else this.warm.refill();
    for (const l of this.listeners) l(session);
    return session;
  }

  private claimProfile(name: string, sessionId: string): { claim: ProfileClaim; runId: string } {
    const store = this.deps.profiles;
    if (!store) throw new HandoffError('bad_request', 'this daemon keeps no profiles');
    const runId = randomUUID();
    return { claim: store.claim(name, { sessionId, runId }), runId };
  }

  /** The profile a stopped session id ran on: this daemon's memory, else the journal's. */
  private lastProfileOf(id: string, stopped: Session | undefined): string | null {
    if (stopped) return stopped.params.profile;
    const p = this.stoppedInfo(id)?.profile;
    return typeof p === 'string' && p ? p : null;
  }

  /** False while audit rows cannot be written (README "Fault policy"): no new session or attach. */
  get auditWritable(): boolean {
    return this.deps.audit.writable;
  }

  /**
   * No attach without its audit row: throws 503 audit_unavailable while the audit cannot be
   * written. Checked here for agents and new sessions; every other attach (a human joining,
   * an agent on a page socket) calls it before it attaches.
   */
  requireAudit(): void {
    const why = this.deps.audit.degraded;
    if (why !== null) throw new HandoffError('audit_unavailable', 'the audit trail cannot be written; no new session or attach until it can', {}, why);
  }

  /**
   * VNC auth identifies the session by its password's DES key (the first 8 bytes, as UTF-8 or
   * Latin-1 clients send them, minus the bits DES ignores): no two live sessions may share one.
   */
  private checkVncPassword(password: string): void {
    for (const s of this.sessions.values()) {
      if (s.live && s.params.enableVnc && s.params.vncPassword && vncPasswordsCollide(s.params.vncPassword, password)) {
        throw new HandoffError(
          'vnc_password_conflict',
          'vnc_password is the same VNC key as a live session\'s (VNC uses only the first 8 bytes, and not every bit of them): choose a password whose first 8 characters differ',
        );
      }
    }
  }

  /** Every new session, for wiring (live views, dashboard feed). */
  onCreated(listener: (s: Session) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Forget stopped sessions after the retention time (they stay in the database). */
  private forgetOld(): void {
    const cutoff = Date.now() - this.deps.config.stoppedRetentionS * 1000;
    for (const [id, s] of this.sessions) if (!s.live && s.lastActivityAt < cutoff) this.sessions.delete(id);
  }

  /** Refuses new sessions, then stops every live one. */
  async close(): Promise<void> {
    this.closing = true;
    const spares = this.warm.close();
    // Sessions are independent of each other: stop them side by side. Not only the live ones:
    // stop() of a session already ending returns its teardown, which must finish too before
    // the daemon exits (or its Xvfb dir is left behind).
    await Promise.all([spares, ...[...this.sessions.values()].map((s) => s.stop('daemon stopped').catch(() => {}))]);
  }
}
