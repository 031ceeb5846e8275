// In-process reader/writer locks per vault for the warm checkout: overlay execs share it as their
// lower layer; syncing it (to a new head, or after a commit) needs it alone. Waiters are served in
// order, so a stream of execs cannot starve a sync.

interface LockState {
  readers: number;
  writer: boolean;
  queue: (() => boolean)[];
}

export class VaultLocks {
  private readonly locks = new Map<string, LockState>();

  private state(key: string): LockState {
    let s = this.locks.get(key);
    if (!s) this.locks.set(key, (s = { readers: 0, writer: false, queue: [] }));
    return s;
  }

  private wake(key: string, s: LockState): void {
    // Grant in arrival order while grants succeed: a waiting writer holds back the readers behind it.
    while (s.queue.length > 0 && s.queue[0]!()) s.queue.shift();
    if (!s.writer && s.readers === 0 && s.queue.length === 0) this.locks.delete(key);
  }

  /** Resolves once `key` is held shared; call the returned function to release. */
  async shared(key: string): Promise<() => void> {
    const s = this.state(key);
    const grant = (): boolean => {
      if (s.writer) return false;
      s.readers++;
      return true;
    };
    if (s.queue.length > 0 || !grant()) await new Promise<void>((r) => s.queue.push(() => grant() && (r(), true)));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      s.readers--;
      this.wake(key, s);
    };
  }

  /** Resolves once `key` is held alone; the returned function releases it, or `downgrade` keeps it shared. */
  async exclusive(key: string): Promise<{ release: () => void; downgrade: () => () => void }> {
    const s = this.state(key);
    const grant = (): boolean => {
      if (s.writer || s.readers > 0) return false;
      s.writer = true;
      return true;
    };
    if (s.queue.length > 0 || !grant()) await new Promise<void>((r) => s.queue.push(() => grant() && (r(), true)));
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      s.writer = false;
      this.wake(key, s);
    };
    const downgrade = (): (() => void) => {
      if (released) throw new Error('lock already released');
      released = true;
      s.writer = false;
      s.readers++;
      this.wake(key, s);
      let done = false;
      return () => {
        if (done) return;
        done = true;
        s.readers--;
        this.wake(key, s);
      };
    };
    return { release, downgrade };
  }
}
