// A sandbox over time: extend its lifetime, pause and resume it (every process of its running execs
// stopped with SIGSTOP and continued with SIGCONT), checkpoint and restore its vault, and the sweep
// the daemon runs every few seconds: sandboxes past their TTL are expired (their execs cancelled
// first), idle ones past their idle timeout are paused (auto-stop). Every change is an event.
import { CorralError } from '../protocol/errors.ts';
import type { Sandbox } from '../protocol/api-schemas.ts';
import { validateCheckpointName } from '../protocol/paths.ts';
import { hostIdentity, identityOf, processAlive, type ProcessIdentity } from '../runtime/process-identity.ts';
import { continueTree, stopTree } from '../runtime/process-tree.ts';
import type { CorralStore } from '../store/corral-store.ts';
import type { CheckpointService } from './checkpoint-service.ts';
import type { EventBus } from './event-bus.ts';
import type { ExecSessions } from './exec-sessions.ts';
import { OWNER, type SandboxService, type Scope } from './sandbox-service.ts';

export interface SandboxLifecycleDeps {
  store: CorralStore;
  sandboxes: SandboxService;
  execs: Pick<ExecSessions, 'running' | 'cancelAll' | 'destroySandbox'>;
  checkpoints: CheckpointService;
  events: EventBus;
}

/** Why a sandbox was paused: a client asked, or the sweep found it idle (auto-stop). */
export type PauseReason = 'request' | 'idle';

export interface SandboxCheckpoint {
  name: string;
  /** The commit it points to. */
  commit: string;
  message: string;
  /** ISO 8601 time. */
  createdAt: string;
}

export interface SandboxRestore {
  sandbox: string;
  checkpoint: string;
  /** The new head: a commit with the checkpoint's files on top of the state before. */
  commit: string;
  /** The head before the restore (still reachable: restoring it undoes the restore). */
  previous: string;
  /** The commit the checkpoint points to. */
  restored: string;
  /** Execs cancelled first (with cancelExecs). */
  cancelled: string[];
}

export interface SweepResult {
  /** Sandboxes destroyed because their lifetime was over. */
  expired: string[];
  /** Sandboxes paused because they were idle. */
  paused: string[];
  /** Sandboxes the sweep could not handle this time (it tries again next time). */
  failed: { sandbox: string; code: string; message: string }[];
}

/** How often a paused sandbox looks for execs whose process started after the pause. */
const LATE_START_POLL_MS = 10;

export class SandboxLifecycle {
  private readonly store: CorralStore;
  private readonly sandboxes: SandboxService;
  private readonly execs: Pick<ExecSessions, 'running' | 'cancelAll' | 'destroySandbox'>;
  private readonly checkpoints: CheckpointService;
  private readonly events: EventBus;
  /** Per sandbox, the operation in progress: pause, resume, restore and expiry take turns. */
  private readonly turns = new Map<string, Promise<unknown>>();
  /** Paused sandboxes with execs whose process had not started at the pause: polled until it has. */
  private readonly lateStarts = new Map<string, NodeJS.Timeout>();
  private sweeping: Promise<SweepResult> | undefined;
  private self: ProcessIdentity | undefined;

  constructor(deps: SandboxLifecycleDeps) {
    this.store = deps.store;
    this.sandboxes = deps.sandboxes;
    this.execs = deps.execs;
    this.checkpoints = deps.checkpoints;
    this.events = deps.events;
  }

  /** A new lifetime: now + ttlSeconds (a sandbox without a TTL gets one). */
  extend(idOrName: string, ttlSeconds: number, scope: Scope = OWNER): Sandbox {
    return this.sandboxes.extend(idOrName, ttlSeconds, scope);
  }

  /**
   * Pauses a ready sandbox: no exec may start, and every process of its running execs is stopped
   * (SIGSTOP). Pausing a paused sandbox changes nothing. Exec timeouts keep running while paused.
   */
  async pause(idOrName: string, scope: Scope = OWNER): Promise<Sandbox> {
    const id = this.sandboxes.get(idOrName, scope).id;
    return this.inTurn(id, () => this.pauseNow(id, 'request', scope));
  }

  /** Resumes a paused sandbox: its execs' processes continue (SIGCONT) and execs may start again. */
  async resume(idOrName: string, scope: Scope = OWNER): Promise<Sandbox> {
    const id = this.sandboxes.get(idOrName, scope).id;
    return this.inTurn(id, async () => {
      const current = this.sandboxes.get(id, scope);
      if (current.state !== 'paused') {
        if (current.state === 'destroyed') throw new CorralError('SANDBOX_STATE', `sandbox ${id} is destroyed: cannot resume it`, { sandbox: id, state: current.state });
        return current;
      }
      this.stopLateStarts(id);
      const running = this.execs.running(id);
      const processes = this.continueExecs(id);
      const { sandbox, tenant } = this.sandboxes.setRunState(id, 'ready', 'request', scope);
      this.events.publish('resumed', { sandbox: id, tenant, data: { execs: running, processes } });
      return sandbox;
    });
  }

  /**
   * Destroys the sandbox after ending its execs (ExecSessions.destroySandbox); a paused one's
   * processes are continued once cancelled, so they end on SIGTERM instead of waiting for the grace.
   */
  async destroy(idOrName: string, options: { keepFork?: boolean } = {}, scope: Scope = OWNER): Promise<Sandbox> {
    const id = this.sandboxes.get(idOrName, scope).id;
    return this.inTurn(id, async () => {
      this.stopLateStarts(id);
      const done = this.execs.destroySandbox(id, options, scope);
      this.continueExecs(id);
      return done;
    });
  }

  /**
   * For the daemon's drain: the execs of paused sandboxes cannot finish, so they are cancelled now
   * (their processes continued to take the SIGTERM) instead of at the drain's deadline.
   */
  async cancelPaused(): Promise<void> {
    const paused = this.store.db.all<{ id: string }>("SELECT id FROM sandboxes WHERE state = 'paused'").map((r) => r.id);
    await Promise.all(
      paused
        .filter((id) => this.execs.running(id).length > 0)
        .map((id) => {
          this.stopLateStarts(id);
          return this.cancelExecs(id);
        }),
    );
  }

  /** Saves a checkpoint of the sandbox's vault (a default name when none is given). */
  saveCheckpoint(idOrName: string, options: { name?: string; message?: string } = {}, scope: Scope = OWNER): SandboxCheckpoint {
    const sb = this.live(idOrName, scope, 'checkpoint it');
    const cp = this.checkpoints.save(sb.vault, options.name, options.message ?? '');
    this.events.publish('checkpointed', { sandbox: sb.id, tenant: this.sandboxes.tenantOf(sb.id), data: { checkpoint: cp.name, commit: cp.commit } });
    return toWire(cp);
  }

  /** The checkpoints of the sandbox's vault, oldest first. */
  listCheckpoints(idOrName: string, scope: Scope = OWNER): SandboxCheckpoint[] {
    const sb = this.live(idOrName, scope, 'list its checkpoints');
    return this.checkpoints.list(sb.vault).map(toWire);
  }

  /** Deletes a checkpoint of the sandbox's vault (the commits stay in its history). */
  deleteCheckpoint(idOrName: string, name: string, scope: Scope = OWNER): SandboxCheckpoint {
    const sb = this.live(idOrName, scope, 'delete its checkpoints');
    validateCheckpointName(name);
    return toWire(this.checkpoints.delete(sb.vault, name));
  }

  /**
   * Makes the vault's files those of the checkpoint, as a new commit. Refused (SANDBOX_STATE, naming
   * them) while execs run, since they would commit on top of the restored files; with cancelExecs
   * they are cancelled first.
   */
  async restoreCheckpoint(idOrName: string, name: string, options: { cancelExecs?: boolean } = {}, scope: Scope = OWNER): Promise<SandboxRestore> {
    validateCheckpointName(name);
    const id = this.live(idOrName, scope, 'restore a checkpoint').id;
    return this.inTurn(id, async () => {
      const sb = this.live(id, scope, 'restore a checkpoint');
      // Checked before anything is cancelled: an unknown name changes nothing.
      this.checkpoints.info(sb.vault, name);
      const running = this.runningExecs(id);
      if (running.length > 0) {
        if (!options.cancelExecs)
          throw new CorralError('SANDBOX_STATE', `sandbox ${id} has ${running.length} exec${running.length > 1 ? 's' : ''} running: wait for them, kill them, or restore with cancelExecs: true`, { sandbox: id, execs: running });
        await this.cancelExecs(id);
      }
      const r = this.checkpoints.restore(sb.vault, name);
      this.events.publish('restored', { sandbox: id, tenant: this.sandboxes.tenantOf(id), data: { checkpoint: name, commit: r.commit.id, previous: r.previous, cancelled: running } });
      return { sandbox: id, checkpoint: name, commit: r.commit.id, previous: r.previous, restored: r.restored, cancelled: running };
    });
  }

  /**
   * One pass of upkeep, for the daemon to call every few seconds (the owner's view: every tenant).
   * Sandboxes past their TTL are destroyed (reason expired: events expired, destroyed) after their
   * running execs are cancelled; ready sandboxes idle for their idle timeout are paused (reason
   * idle). A pass already under way is shared, not doubled. One sandbox's failure does not stop
   * the others.
   */
  sweep(): Promise<SweepResult> {
    this.sweeping ??= this.sweepOnce().finally(() => (this.sweeping = undefined));
    return this.sweeping;
  }

  private async sweepOnce(): Promise<SweepResult> {
    const result: SweepResult = { expired: [], paused: [], failed: [] };
    const failed = (sandbox: string, e: unknown): void => {
      const err = e instanceof CorralError ? e : new CorralError('INTERNAL', (e as Error)?.message ?? String(e));
      result.failed.push({ sandbox, code: err.code, message: err.message });
    };
    for (const id of this.sandboxes.dueToExpire()) {
      try {
        const done = await this.inTurn(id, async () => {
          this.stopLateStarts(id);
          if (this.execs.running(id).length > 0) await this.cancelExecs(id);
          return this.sandboxes.expire(id);
        });
        if (done) result.expired.push(id);
      } catch (e) {
        failed(id, e);
      }
    }
    for (const id of this.sandboxes.dueToIdle()) {
      // Counted as activity by the exec layer in a moment: not idle.
      if (this.execs.running(id).length > 0) continue;
      try {
        const sb = await this.inTurn(id, async () => (this.sandboxes.dueToIdle().includes(id) ? this.pauseNow(id, 'idle', OWNER) : null));
        if (sb?.state === 'paused') result.paused.push(id);
      } catch (e) {
        failed(id, e);
      }
    }
    return result;
  }

  private async pauseNow(id: string, reason: PauseReason, scope: Scope): Promise<Sandbox> {
    const { sandbox, changed, tenant } = this.sandboxes.setRunState(id, 'paused', reason, scope);
    if (!changed) return sandbox;
    // From here no exec can start (ExecSessions.start wants a ready sandbox): the set below is final.
    const running = this.execs.running(id);
    let processes = 0;
    const late: string[] = [];
    for (const exec of running) {
      const root = this.supervisorOf(exec);
      if (root === null) late.push(exec);
      else processes += (await stopTree(root)).pids.length;
    }
    if (late.length > 0) this.watchLateStarts(id, late);
    this.events.publish('paused', { sandbox: id, tenant, data: { reason, execs: running, processes } });
    return sandbox;
  }

  /**
   * Execs accepted before the pause whose process had not started yet (still in policy, checkout
   * or setup): stopped as soon as their supervisor reports in, while the sandbox stays paused.
   */
  private watchLateStarts(id: string, execs: string[]): void {
    this.stopLateStarts(id);
    const pending = new Set(execs);
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      const state = this.store.db.get<{ state: string }>('SELECT state FROM sandboxes WHERE id = ?', id)?.state;
      const live = new Set(this.execs.running(id));
      for (const exec of pending) if (!live.has(exec)) pending.delete(exec);
      if (state !== 'paused' || pending.size === 0) return this.stopLateStarts(id);
      const ready = [...pending].map((exec) => [exec, this.supervisorOf(exec)] as const).filter(([, root]) => root !== null);
      if (ready.length === 0) return;
      busy = true;
      // In the sandbox's turn: a resume that came first wins, and one that comes later waits for this.
      void this.inTurn(id, async () => {
        if (this.store.db.get<{ state: string }>('SELECT state FROM sandboxes WHERE id = ?', id)?.state !== 'paused') return;
        for (const [exec, root] of ready) {
          pending.delete(exec);
          await stopTree(root!);
        }
      })
        .catch(() => undefined)
        .finally(() => (busy = false));
    }, LATE_START_POLL_MS);
    timer.unref();
    this.lateStarts.set(id, timer);
  }

  /** Cancels the sandbox's running execs and waits for their end; stopped processes are continued to take the SIGTERM. */
  private async cancelExecs(id: string): Promise<void> {
    const done = this.execs.cancelAll(id);
    this.continueExecs(id);
    await done;
  }

  /** SIGCONT to every process of the sandbox's running execs; how many there were. */
  private continueExecs(id: string): number {
    let processes = 0;
    for (const exec of this.execs.running(id)) {
      const root = this.supervisorOf(exec);
      if (root !== null) processes += continueTree(root).length;
    }
    return processes;
  }

  private stopLateStarts(id: string): void {
    const timer = this.lateStarts.get(id);
    if (timer !== undefined) clearInterval(timer);
    this.lateStarts.delete(id);
  }

  /** The exec's supervisor pid while it is that same process (not a later one with its pid), else null. */
  private supervisorOf(exec: string): number | null {
    const r = this.store.db.get<{ supervisor_pid: number | null; supervisor_started: string | null; boot_id: string | null }>(
      "SELECT supervisor_pid, supervisor_started, boot_id FROM execs WHERE id = ? AND state = 'running'",
      exec,
    );
    if (!r || r.supervisor_pid === null) return null;
    this.self ??= identityOf(process.pid, hostIdentity());
    const who = { pid: r.supervisor_pid, started: r.supervisor_started ?? '', host: r.boot_id ?? this.self.host };
    return processAlive(who, this.self) ? r.supervisor_pid : null;
  }

  /** Running execs of the sandbox: this process's, and any the store still records as running. */
  private runningExecs(id: string): string[] {
    const rows = this.store.db.all<{ id: string }>("SELECT id FROM execs WHERE sandbox_id = ? AND state = 'running' ORDER BY rowid", id).map((r) => r.id);
    return [...new Set([...this.execs.running(id), ...rows])];
  }

  /** The sandbox, unless destroyed (SANDBOX_STATE: its vault may be gone). */
  private live(idOrName: string, scope: Scope, what: string): Sandbox {
    const sb = this.sandboxes.get(idOrName, scope);
    if (sb.state === 'destroyed') throw new CorralError('SANDBOX_STATE', `sandbox ${sb.id} is destroyed: cannot ${what}`, { sandbox: sb.id, state: sb.state });
    return sb;
  }

  /** Runs `fn` after the sandbox's previous lifecycle operation has ended. */
  private async inTurn<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const before = this.turns.get(id) ?? Promise.resolve();
    const mine = before.catch(() => undefined).then(fn);
    const settled = mine.catch(() => undefined);
    this.turns.set(id, settled);
    try {
      return await mine;
    } finally {
      if (this.turns.get(id) === settled) this.turns.delete(id);
    }
  }
}

function toWire(cp: { name: string; commit: string; message: string; createdAt: number }): SandboxCheckpoint {
  return { name: cp.name, commit: cp.commit, message: cp.message, createdAt: new Date(cp.createdAt).toISOString() };
}
