// Named long-running processes of a sandbox (a dev server, a watcher): each run is a background exec
// (so output, kill, and crash recovery are the exec layer's), with a restart policy (`no`, or
// `on-failure` up to a limit, with backoff), stop (TERM, wait, KILL), and logs across runs.
import { newId, isId } from '../protocol/ids.ts';
import { CorralError } from '../protocol/errors.ts';
import { validateVaultName } from '../protocol/paths.ts';
import type { CorralStore } from '../store/corral-store.ts';
import { checkLogOptions, liveLines, storedLines, type LogLine, type LogOptions } from './exec-logs.ts';
import type { ExecInfo, ExecSessions } from './exec-sessions.ts';
import { OWNER, type SandboxService, type Scope } from './sandbox-service.ts';

export type ProcessState = 'running' | 'restarting' | 'exited' | 'failed' | 'stopped' | 'removed';
export type RestartPolicy = 'no' | 'on-failure';

export interface ProcessSpec {
  name: string;
  argv?: string[];
  shell?: string;
  cwd?: string;
  env?: Record<string, string>;
  /** Wall-clock limit of one run (default 1 day, the most an exec may have). */
  timeoutMs?: number;
  restart?: RestartPolicy;
  /** With on-failure: how many restarts at most (default 3). */
  maxRestarts?: number;
}

export interface ProcessInfo {
  id: string;
  sandbox: string;
  name: string;
  state: ProcessState;
  restart: RestartPolicy;
  maxRestarts: number;
  restarts: number;
  /** The current (or last) run. */
  exec: string | null;
  pid: number | null;
  exitCode: number | null;
  command: { argv: string[] | null; shell: string | null; cwd: string | null };
  createdAt: string;
  updatedAt: string;
}

interface ProcessRow {
  id: string;
  sandbox_id: string;
  name: string;
  request: string;
  restart: RestartPolicy;
  max_restarts: number;
  restarts: number;
  state: ProcessState;
  exec_id: string | null;
  created_at: number;
  updated_at: number;
}

export const PROCESS_TIMEOUT_MS = 86_400_000;
const BACKOFF_MS = [100, 500, 2000, 5000];

export interface ProcessServiceDeps {
  store: CorralStore;
  sandboxes: SandboxService;
  execs: ExecSessions;
}

export class ProcessService {
  private readonly store: CorralStore;
  private readonly sandboxes: SandboxService;
  private readonly execs: ExecSessions;
  /** Processes asked to stop: their run ending is not a failure to restart. */
  private readonly stopping = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(deps: ProcessServiceDeps) {
    this.store = deps.store;
    this.sandboxes = deps.sandboxes;
    this.execs = deps.execs;
  }

  start(sandboxIdOrName: string, spec: ProcessSpec, scope: Scope = OWNER): ProcessInfo {
    if (typeof spec !== 'object' || spec === null) throw new CorralError('INVALID_ARGUMENT', 'the process spec must be an object');
    if (typeof spec.name !== 'string') throw new CorralError('INVALID_ARGUMENT', 'a process needs a name', {});
    validateVaultName(spec.name);
    if (spec.name.startsWith('proc_')) throw new CorralError('INVALID_NAME', 'a process name cannot start with proc_ (ids do)', { name: spec.name });
    const restart = spec.restart ?? 'no';
    if (restart !== 'no' && restart !== 'on-failure') throw new CorralError('INVALID_ARGUMENT', `restart must be no or on-failure, got '${String(restart).slice(0, 20)}'`, {});
    const maxRestarts = spec.maxRestarts ?? 3;
    if (!Number.isSafeInteger(maxRestarts) || maxRestarts < 0 || maxRestarts > 1000) throw new CorralError('INVALID_ARGUMENT', 'maxRestarts must be a whole number from 0 to 1000', {});
    const sandbox = this.sandboxes.get(sandboxIdOrName, scope);
    if (this.store.db.get("SELECT 1 AS x FROM processes WHERE sandbox_id = ? AND name = ? AND state != 'removed'", sandbox.id, spec.name))
      throw new CorralError('CONFLICT', `sandbox ${sandbox.id} has a process named '${spec.name}' already: remove it first, or pick another name`, { name: spec.name });
    const id = newId('proc', this.store.now());
    const request = { argv: spec.argv, shell: spec.shell, cwd: spec.cwd, env: spec.env, timeoutMs: spec.timeoutMs ?? PROCESS_TIMEOUT_MS };
    const now = this.store.now();
    this.store.db.run(
      "INSERT INTO processes(id, sandbox_id, name, request, restart, max_restarts, restarts, state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 0, 'running', ?, ?)",
      id, sandbox.id, spec.name, JSON.stringify(request), restart, maxRestarts, now, now,
    );
    try {
      this.run(this.row(id)!, scope);
    } catch (e) {
      // A run that cannot start leaves no process behind.
      this.store.db.run('DELETE FROM processes WHERE id = ?', id);
      throw e;
    }
    return this.get(id, scope);
  }

  list(sandboxIdOrName: string, filter: { running?: boolean } = {}, scope: Scope = OWNER): ProcessInfo[] {
    const sandbox = this.sandboxes.get(sandboxIdOrName, scope);
    const rows = this.store.db.all<ProcessRow>("SELECT * FROM processes WHERE sandbox_id = ? AND state != 'removed' ORDER BY rowid", sandbox.id);
    return rows.map((r) => this.info(r)).filter((p) => !filter.running || p.state === 'running' || p.state === 'restarting');
  }

  get(id: string, scope: Scope = OWNER): ProcessInfo {
    return this.info(this.resolve(id, scope));
  }

  /** SIGTERM, up to `timeoutMs` (default 10 s) for it to end, then SIGKILL; no restart. */
  async stop(id: string, options: { timeoutMs?: number } = {}, scope: Scope = OWNER): Promise<ProcessInfo> {
    const row = this.resolve(id, scope);
    this.stopping.add(row.id);
    this.cancelRestart(row.id);
    if (row.exec_id && this.execs.get(row.exec_id).state === 'running') {
      try {
        this.execs.kill(row.exec_id, 'TERM', scope);
      } catch (e) {
        if (!(e instanceof CorralError && e.code === 'EXEC_STATE')) throw e;
      }
      const ended = await this.execs.wait(row.exec_id, { timeoutMs: options.timeoutMs ?? 10_000 });
      if (ended.state === 'running') {
        this.execs.kill(row.exec_id, 'KILL', scope);
        await this.execs.wait(row.exec_id, { timeoutMs: 30_000 });
      }
    }
    this.setState(row.id, 'stopped');
    return this.get(row.id, scope);
  }

  /** Sends a signal to the current run (TERM and KILL end it; the restart policy then applies unless stopped). */
  kill(id: string, signal: string | number = 'KILL', scope: Scope = OWNER): ProcessInfo {
    const row = this.resolve(id, scope);
    if (!row.exec_id || (row.state !== 'running' && row.state !== 'restarting')) throw new CorralError('EXEC_STATE', `process ${row.name} is ${row.state}: nothing to signal`, { process: row.id, state: row.state });
    this.execs.kill(row.exec_id, signal, scope);
    return this.get(row.id, scope);
  }

  /** Removes a process; a running one only with force (it is stopped first). */
  async remove(id: string, options: { force?: boolean } = {}, scope: Scope = OWNER): Promise<ProcessInfo> {
    const row = this.resolve(id, scope);
    if (row.state === 'running' || row.state === 'restarting') {
      if (!options.force) throw new CorralError('EXEC_STATE', `process ${row.name} is running: stop it first, or remove it with force`, { process: row.id, state: row.state });
      await this.stop(row.id, { timeoutMs: 2000 }, scope);
    }
    this.setState(row.id, 'removed');
    return this.info(this.row(row.id)!);
  }

  /** Log lines of every run, oldest first; with follow, then the live lines until the process ends or `signal` aborts. */
  async *logs(id: string, options: LogOptions & { follow?: boolean; signal?: AbortSignal } = {}, scope: Scope = OWNER): AsyncGenerator<LogLine> {
    checkLogOptions(options);
    const row = this.resolve(id, scope);
    const runs = this.store.db.all<{ id: string }>('SELECT id FROM execs WHERE process_id = ? ORDER BY rowid', row.id).map((r) => r.id);
    const { lines, ends } = storedLines(this.execs.output, runs, options);
    yield* lines;
    if (!options.follow) return;
    let exec = runs.at(-1);
    let from = ends;
    while (exec && !options.signal?.aborted) {
      yield* liveLines(exec, this.execs.frames(exec, from, { follow: true, ...(options.signal ? { signal: options.signal } : {}) }, scope), options);
      // A restart makes a new run: follow it too, from its start.
      const now = this.row(row.id)!;
      if (now.exec_id === exec) {
        if (now.state !== 'restarting') return;
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      exec = now.exec_id ?? undefined;
      from = { stdout: 0, stderr: 0 };
    }
  }

  /** Stops restart timers (the daemon's shutdown). */
  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private run(row: ProcessRow, scope: Scope): void {
    const request = JSON.parse(row.request);
    const { info, done } = this.execs.start(row.sandbox_id, { ...request, background: true, processId: row.id }, scope);
    this.store.db.run("UPDATE processes SET exec_id = ?, state = 'running', updated_at = ? WHERE id = ?", info.id, this.store.now(), row.id);
    void done.then((ended) => {
      try {
        this.onExit(row.id, ended, scope);
      } catch {
        // Closed meanwhile (shutdown): the next daemon finds the run lost and the process as it was.
      }
    });
  }

  private onExit(id: string, ended: ExecInfo, scope: Scope): void {
    const row = this.row(id);
    if (!row || row.exec_id !== ended.id || row.state === 'removed' || row.state === 'stopped') return;
    if (this.stopping.delete(id)) return this.setState(id, 'stopped');
    const failed = ended.state !== 'completed' || ended.exitCode !== 0;
    if (!failed) return this.setState(id, 'exited');
    if (row.restart !== 'on-failure' || row.restarts >= row.max_restarts) return this.setState(id, 'failed');
    this.store.db.run("UPDATE processes SET state = 'restarting', restarts = restarts + 1, updated_at = ? WHERE id = ?", this.store.now(), id);
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      const now = this.row(id);
      if (!now || now.state !== 'restarting') return;
      try {
        this.run(now, scope);
      } catch {
        // The sandbox went away or cannot run commands now: the process has failed.
        this.setState(id, 'failed');
      }
    }, BACKOFF_MS[Math.min(row.restarts, BACKOFF_MS.length - 1)]);
    timer.unref();
    this.timers.add(timer);
  }

  private cancelRestart(id: string): void {
    if (this.row(id)?.state === 'restarting') this.setState(id, 'stopped');
  }

  private setState(id: string, state: ProcessState): void {
    this.store.db.run('UPDATE processes SET state = ?, updated_at = ? WHERE id = ?', state, this.store.now(), id);
  }

  private row(id: string): ProcessRow | undefined {
    return this.store.db.get<ProcessRow>('SELECT * FROM processes WHERE id = ?', id);
  }

  private resolve(id: string, scope: Scope): ProcessRow {
    const shown = String(id).slice(0, 80);
    if (typeof id !== 'string' || !isId('proc', id)) throw new CorralError('INVALID_ARGUMENT', `'${shown}' is not a process id (proc_…)`, { process: shown });
    const row = this.row(id);
    if (!row || row.state === 'removed') throw new CorralError('PROCESS_NOT_FOUND', `no process '${id}'`, { process: id });
    // Another tenant's process is not found, like its sandbox.
    try {
      this.sandboxes.get(row.sandbox_id, scope);
    } catch {
      throw new CorralError('PROCESS_NOT_FOUND', `no process '${id}'`, { process: id });
    }
    return row;
  }

  private info(r: ProcessRow): ProcessInfo {
    const run = r.exec_id ? this.execs.get(r.exec_id) : null;
    const req = JSON.parse(r.request) as { argv?: string[]; shell?: string; cwd?: string };
    return {
      id: r.id,
      sandbox: r.sandbox_id,
      name: r.name,
      state: r.state,
      restart: r.restart,
      maxRestarts: r.max_restarts,
      restarts: r.restarts,
      exec: r.exec_id,
      pid: run?.state === 'running' ? run.pid : null,
      exitCode: run?.exitCode ?? null,
      command: { argv: req.argv ?? null, shell: req.shell ?? null, cwd: req.cwd ?? null },
      createdAt: new Date(r.created_at).toISOString(),
      updatedAt: new Date(r.updated_at).toISOString(),
    };
  }
}
