// Reader/writer leases per vault on the warm checkout, shared by every Corral process of one home:
// overlay execs hold it shared while it is their lower layer; syncing or committing it, and host
// execs that write into it in place, hold it alone. The leases live in the store's database
// (table `leases`), so two CLI calls see each other. Waiters queue in arrival order (a waiting
// writer holds back the readers behind it, so a stream of execs cannot starve a sync) and poll; a
// release in this process wakes this process's waiters at once. A holder whose process is gone
// (or whose pid now names another process: its start time differs) is removed when seen, and a
// dead holder that was writing in place (dirty) makes the next exclusive holder `recovered`.
import { randomBytes } from 'node:crypto';
import { identityOf, procStat, processAlive, type ProcessIdentity } from '../runtime/process-identity.ts';
import type { CorralStore } from '../store/corral-store.ts';
import type { Database } from '../store/database.ts';

type Mode = 'shared' | 'exclusive';

interface LeaseRow {
  seq: number;
  holder: string;
  mode: Mode;
  granted: number;
  pid: number;
  started: string;
  host: string;
  dirty: number;
  helper_pid: number | null;
  helper_started: string | null;
}

/** A shared lease: call it to release; `attach` ties it to another process too (see ExclusiveLease.attach). */
export type SharedLease = (() => void) & { attach: (pid: number) => void };

export interface ExclusiveLease {
  /**
   * Gives the lease up; safe to call more than once. `leaveDirty`: the checkout may hold writes
   * nobody committed or put back (a command that escaped its supervisor): the next exclusive
   * holder is `recovered`.
   */
  release: (options?: { leaveDirty?: boolean }) => void;
  /** Turns the lease into a shared one without letting a writer in between; returns its release. */
  downgrade: () => SharedLease;
  /**
   * True when a previous holder died holding a dirty lease: rescan or sync the checkout, then call
   * `recoveredDone()`; until then the mark stays for the next holder.
   */
  recovered: boolean;
  recoveredDone: () => void;
  /** The lease is also held while process `pid` (an exec's supervisor) lives. */
  attach: (pid: number) => void;
}

export interface ExclusiveOptions {
  /** The holder writes into the checkout in place (a host exec): if it dies holding the lease, the checkout is dirty. */
  dirty?: boolean;
}

const FIRST_POLL_MS = 2;
const MAX_POLL_MS = 20;
const RELEASE_RETRY_MS = 100;

export class VaultLocks {
  private readonly db: Database;
  private readonly self: ProcessIdentity;
  /** This process's waiters per key: a local release wakes them instead of letting them poll. */
  private readonly waiters = new Map<string, Set<() => void>>();

  constructor(store: CorralStore) {
    this.db = store.db;
    this.self = identityOf();
  }

  /** Resolves once `key` is held shared; call the returned function to release. Rejects with the signal's reason if aborted while waiting. */
  async shared(key: string, signal?: AbortSignal): Promise<SharedLease> {
    const lease = (await this.acquire(key, 'shared', false, signal))!;
    return this.sharedLease(key, lease.seq, lease.holder);
  }

  /** Resolves once `key` is held alone; `release` gives it up, or `downgrade` keeps it shared. */
  async exclusive(key: string, options: ExclusiveOptions = {}): Promise<ExclusiveLease> {
    return this.exclusiveLease(key, (await this.acquire(key, 'exclusive', Boolean(options.dirty)))!);
  }

  /** The exclusive lease if nobody holds or waits for `key` now; null (at once) otherwise. */
  async tryExclusive(key: string, options: ExclusiveOptions = {}): Promise<ExclusiveLease | null> {
    const got = await this.acquire(key, 'exclusive', Boolean(options.dirty), undefined, false);
    return got && this.exclusiveLease(key, got);
  }

  private exclusiveLease(key: string, { seq, holder, recovered }: { seq: number; holder: string; recovered: boolean }): ExclusiveLease {
    const release = this.releaser(key, seq, holder);
    let released = false;
    return {
      recovered,
      recoveredDone: () => {
        if (recovered) this.db.run('DELETE FROM lease_recovery WHERE key = ?', key);
      },
      attach: (pid) => this.attach(seq, holder, pid),
      release: (opts = {}) => {
        if (!released && opts.leaveDirty)
          this.db.run('INSERT OR REPLACE INTO lease_recovery(key, holder, pid, found_at) VALUES (?, ?, ?, ?)', key, holder, this.self.pid, Date.now());
        released = true;
        release();
      },
      downgrade: () => {
        if (released) throw new Error('lock already released');
        // On failure the lease stays exclusive and release() still gives it up.
        this.db.run("UPDATE leases SET mode = 'shared', dirty = 0 WHERE seq = ? AND holder = ?", seq, holder);
        released = true;
        this.wake(key);
        return this.sharedLease(key, seq, holder);
      },
    };
  }

  private sharedLease(key: string, seq: number, holder: string): SharedLease {
    return Object.assign(this.releaser(key, seq, holder), { attach: (pid: number) => this.attach(seq, holder, pid) });
  }

  /** Records `pid` (with its start time) as a second life of the lease at `seq`. */
  private attach(seq: number, holder: string, pid: number): void {
    this.db.run('UPDATE leases SET helper_pid = ?, helper_started = ? WHERE seq = ? AND holder = ?', pid, procStat(pid)?.started ?? '', seq, holder);
  }

  private async acquire(key: string, mode: Mode, dirty: boolean, signal?: AbortSignal, wait = true): Promise<{ seq: number; holder: string; recovered: boolean } | null> {
    // Waiting inside a transaction would hold the database's write lock against the holder we wait for.
    if (this.db.inTransaction) throw new Error('vault locks must be taken outside a database transaction');
    signal?.throwIfAborted();
    const holder = `${this.self.pid}-${randomBytes(6).toString('hex')}`;
    const first = this.db.transaction(() => {
      const granted = !this.blocked(key, mode, Infinity, true);
      const seq = this.db.run(
        'INSERT INTO leases(key, holder, mode, granted, pid, started, host, dirty, acquired_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
        key, holder, mode, granted ? 1 : 0, this.self.pid, this.self.started, this.self.host, dirty ? 1 : 0, Date.now(),
      ).lastInsertRowid;
      return { seq, granted, recovered: granted && this.recovering(key, mode) };
    });
    if (first.granted) return { seq: first.seq, holder, recovered: first.recovered };
    if (!wait) {
      this.drop(key, first.seq, holder);
      return null;
    }

    let seq = first.seq;
    let woken = false;
    let resume: (() => void) | undefined;
    const wake = (): void => {
      woken = true;
      resume?.();
    };
    let set = this.waiters.get(key);
    if (!set) this.waiters.set(key, (set = new Set()));
    set.add(wake);
    signal?.addEventListener('abort', wake, { once: true });
    let delay = FIRST_POLL_MS;
    try {
      for (;;) {
        if (!woken)
          await new Promise<void>((r) => {
            const timer = setTimeout(r, delay);
            resume = () => (clearTimeout(timer), r());
          });
        resume = undefined;
        woken = false;
        signal?.throwIfAborted();
        delay = Math.min(MAX_POLL_MS, Math.ceil(delay * 1.5));
        // A read first: a waiter still behind a live holder takes no write lock.
        if (this.blocked(key, mode, seq, false)) continue;
        const turn = this.db.transaction(() => {
          if (!this.db.get('SELECT 1 AS x FROM leases WHERE seq = ? AND holder = ?', seq, holder)) {
            // Our row was taken for a dead holder's (it cannot be: we live); queue again rather than hold nothing.
            seq = this.db.run(
              'INSERT INTO leases(key, holder, mode, granted, pid, started, host, dirty, acquired_at) VALUES (?, ?, ?, 0, ?, ?, ?, ?, ?)',
              key, holder, mode, this.self.pid, this.self.started, this.self.host, dirty ? 1 : 0, Date.now(),
            ).lastInsertRowid;
            return undefined;
          }
          if (this.blocked(key, mode, seq, true)) return undefined;
          this.db.run('UPDATE leases SET granted = 1, acquired_at = ? WHERE seq = ?', Date.now(), seq);
          return { recovered: this.recovering(key, mode) };
        });
        if (turn) return { seq, holder, recovered: turn.recovered };
      }
    } catch (e) {
      this.drop(key, seq, holder);
      throw e;
    } finally {
      set.delete(wake);
      if (set.size === 0 && this.waiters.get(key) === set) this.waiters.delete(key);
      signal?.removeEventListener('abort', wake);
    }
  }

  /**
   * Whether a request for `key` in `mode`, queued at `seq` (Infinity: not yet queued), must wait:
   * an exclusive request waits for every holder and every earlier waiter; a shared one for an
   * exclusive holder or an earlier exclusive waiter. Dead blockers are removed when `write` (in a
   * write transaction), else only skipped.
   */
  private blocked(key: string, mode: Mode, seq: number, write: boolean): boolean {
    // Only exclusive rows can block a shared request: many readers at once need not be listed.
    const rows =
      mode === 'shared'
        ? this.db.all<LeaseRow>("SELECT seq, holder, mode, granted, pid, started, host, dirty, helper_pid, helper_started FROM leases WHERE key = ? AND mode = 'exclusive' ORDER BY seq", key)
        : this.db.all<LeaseRow>('SELECT seq, holder, mode, granted, pid, started, host, dirty, helper_pid, helper_started FROM leases WHERE key = ? ORDER BY seq', key);
    for (const row of rows) {
      if (row.seq === seq) continue;
      const blocks = mode === 'exclusive' ? row.granted === 1 || row.seq < seq : row.mode === 'exclusive' && (row.granted === 1 || row.seq < seq);
      if (!blocks) continue;
      if (this.alive(row)) return true;
      if (!write) continue;
      this.db.run('DELETE FROM leases WHERE seq = ?', row.seq);
      if (row.granted === 1 && row.mode === 'exclusive' && row.dirty === 1)
        this.db.run('INSERT OR REPLACE INTO lease_recovery(key, holder, pid, found_at) VALUES (?, ?, ?, ?)', key, row.holder, row.pid, Date.now());
    }
    return false;
  }

  private recovering(key: string, mode: Mode): boolean {
    return mode === 'exclusive' && this.db.get('SELECT 1 AS x FROM lease_recovery WHERE key = ?', key) !== undefined;
  }

  /** Whether the process that wrote `row` still runs. Unknowable cases count as alive: a lease is never taken from a live holder. */
  private alive(row: LeaseRow): boolean {
    return this.processAlive(row, row.pid, row.started) || (row.helper_pid !== null && this.processAlive(row, row.helper_pid, row.helper_started ?? ''));
  }

  private processAlive(row: Pick<LeaseRow, 'host'>, pid: number, started: string): boolean {
    return processAlive({ pid, started, host: row.host }, this.self);
  }


  /** An idempotent release of the lease at `seq`. */
  private releaser(key: string, seq: number, holder: string): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.drop(key, seq, holder);
    };
  }

  /**
   * Removes a lease row; never throws. Inside a caller's transaction it waits for that to end (a
   * rollback would bring the row back); on a database error it retries in the background while
   * the database is open (the row would otherwise block others as long as this process lives).
   */
  private drop(key: string, seq: number, holder: string): void {
    const retry = (ms: number): void => {
      setTimeout(() => this.drop(key, seq, holder), ms).unref();
    };
    if (!this.db.raw.isOpen) return;
    if (this.db.inTransaction) return retry(0);
    try {
      // One statement: atomic on its own, no transaction around it needed.
      this.db.run('DELETE FROM leases WHERE seq = ? AND holder = ?', seq, holder);
      this.wake(key);
    } catch {
      retry(RELEASE_RETRY_MS);
    }
  }

  private wake(key: string): void {
    const set = this.waiters.get(key);
    if (set) for (const wake of [...set]) wake();
  }
}
