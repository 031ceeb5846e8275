// What the host and namespace backends share: each exec runs under the supervisor in its own
// cgroup (limits, peak memory, OOM detection, kill-all), with rlimits, a timeout that takes down
// the whole tree, capped output, and a per-exec scratch directory on tmpfs released on every path.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { CorralError } from '../protocol/errors.ts';
import type { BackendName, Capabilities, ExecSpec, ResourceLimits, RunResult, Sandbox, SandboxSpec } from './backend.ts';
import { unenforceable } from './backend.ts';
import { CgroupSet, cleanupStaleCgroups, detectCgroups, pidAlive, type CgroupLayout } from './cgroups.ts';
import { runSupervised, scratchRoot, type RlimitName, type SupervisedSpec } from './supervisor.ts';
import { descendants } from './process-tree.ts';

/** How a backend turns an exec into the supervisor's command line. */
export interface Launch {
  argv: string[];
  chdir?: string;
  overlay?: SupervisedSpec['overlay'];
  extraFds?: Buffer[];
  /** The overlay upper directory the command's writes land in. */
  upperDir?: string;
  /** See SupervisedSpec.termSpareChild (bwrap). */
  termSpareChild?: boolean;
  /** See SupervisedSpec.innerStatus (a passive supervisor inside bwrap). */
  innerStatus?: boolean;
  /** The exec's terminal is made inside the sandbox, by the passive supervisor (its argv says so). */
  terminalInside?: boolean;
}

/**
 * Removes a scratch directory. Overlayfs leaves its work/work directory with mode 0, which only
 * root may delete as is: as anyone else, make the directories writable and try again.
 */
export function removeScratch(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw e;
    const open = (d: string): void => {
      try {
        chmodSync(d, 0o700);
        for (const entry of readdirSync(d, { withFileTypes: true })) if (entry.isDirectory()) open(join(d, entry.name));
      } catch {
        // gone, or not ours
      }
    };
    open(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Scratch directories are named x-<owner pid>-<random>: the next run removes those of dead owners. */
export function cleanupStaleScratch(root?: string): number {
  let removed = 0;
  let names: string[] = [];
  try {
    root ??= scratchRoot();
    names = readdirSync(root);
  } catch {
    return 0;
  }
  for (const n of names) {
    const m = /^x-(\d+)-/.exec(n);
    if (m && !pidAlive(Number(m[1]))) {
      removeScratch(join(root!, n));
      removed++;
    }
  }
  return removed;
}

/** What a crashed Corral left behind: its scratch directories and its cgroups (mounts die with their namespaces). */
export function cleanupStaleResources(): { scratch: number; cgroups: number } {
  const scratch = cleanupStaleScratch();
  let cgroups = 0;
  try {
    cgroups = cleanupStaleCgroups(detectCgroups(), pidAlive);
  } catch {
    // no cgroups here, or not ours to clean
  }
  return { scratch, cgroups };
}

function rlimitsFor(limits: ResourceLimits): Partial<Record<RlimitName, number>> {
  const r: Partial<Record<RlimitName, number>> = { CORE: 0 };
  if (limits.openFiles !== undefined) r.NOFILE = limits.openFiles;
  if (limits.fileSizeBytes !== undefined) r.FSIZE = limits.fileSizeBytes;
  return r;
}

export abstract class SupervisedSandbox implements Sandbox {
  readonly id = `sbx_${randomBytes(8).toString('hex')}`;
  abstract readonly backend: BackendName;
  readonly spec: SandboxSpec;
  protected readonly capabilities: Capabilities;
  protected readonly cgroups: CgroupLayout | null;
  private readonly running = new Map<number, CgroupSet | null>();
  private destroyed = false;

  constructor(spec: SandboxSpec, capabilities: Capabilities, cgroups: CgroupLayout | null) {
    this.spec = spec;
    this.capabilities = capabilities;
    this.cgroups = cgroups;
  }

  /** The supervisor's command line for `exec` with `scratch` as its private directory. */
  protected abstract launch(exec: ExecSpec, scratch: string): Launch;

  /** Whether `launch` needs a private scratch directory for this exec. */
  protected abstract needsScratch(exec: ExecSpec): boolean;

  /**
   * Processes of Corral's own in the exec's cgroup, added to a pids limit so that `pids: N` means N
   * processes of the command: the supervisor (it joins the group first), plus bwrap's two (its
   * outer process and the pid namespace's init) for the namespace backend.
   */
  protected abstract readonly pidsOverhead: number;

  async exec(exec: ExecSpec): Promise<RunResult> {
    if (this.destroyed) throw new CorralError('EXEC_FAILED', `sandbox ${this.id} was destroyed`, { sandbox: this.id });
    if (exec.tty && !this.capabilities.pty)
      throw new CorralError('BACKEND_UNAVAILABLE', `the ${this.backend} backend cannot give a command a terminal here: run it without tty, or pick another backend (corral doctor)`, { backend: this.backend });
    if (exec.user && this.backend !== 'namespace' && exec.user.uid !== process.getuid?.())
      throw new CorralError('BACKEND_UNAVAILABLE', `the ${this.backend} backend runs commands as Corral's own user (uid ${process.getuid?.()}): run as uid ${exec.user.uid} with the namespace backend`, { backend: this.backend, user: exec.user });
    const limits = { ...this.spec.limits, ...exec.limits };
    const warnings: string[] = [];
    const missing = unenforceable(this.capabilities, limits);
    if (missing.length > 0) {
      if (!this.spec.bestEffort)
        throw new CorralError('LIMIT_UNENFORCEABLE', `the ${this.backend} backend cannot enforce ${missing.join(', ')} here: drop the limit, pick another backend (corral doctor), or accept best effort explicitly`, { backend: this.backend, limits: missing });
      warnings.push(`not enforced (best effort): ${missing.join(', ')}`);
    }
    const t0 = performance.now();
    // Scratch space only for backends that mount something (the overlay's upper, work and merged dirs).
    let scratch: string | undefined;
    if (this.needsScratch(exec)) {
      scratch = mkdtempSync(join(scratchRoot(), `x-${process.pid}-`));
    }
    let group: CgroupSet | null = null;
    let keepScratch = false;
    let supervisor = 0;
    try {
      // A cgroup only when a limit needs one: the supervisor already kills the whole tree and its
      // rusage gives CPU time and peak memory, and a group costs ~1 ms per exec (made and removed
      // off the event loop: see CgroupSet.createAsync).
      if (this.cgroups && (limits.memoryBytes !== undefined || limits.pids !== undefined || limits.cpuPercent !== undefined))
        group = await CgroupSet.createAsync(this.cgroups, randomBytes(6).toString('hex'), {
          memoryBytes: limits.memoryBytes,
          // An invalid value goes through as it is, for CgroupSet to reject with its message.
          pids: limits.pids !== undefined && Number.isSafeInteger(limits.pids) && limits.pids >= 1 ? limits.pids + this.pidsOverhead : limits.pids,
          cpuQuotaPercent: limits.cpuPercent,
        });
      const launch = this.launch(exec, scratch ?? '');
      const mounting = performance.now() - t0;
      const t1 = performance.now();
      const r = await runSupervised({
        argv: launch.argv,
        env: exec.env,
        chdir: launch.chdir,
        overlay: launch.overlay,
        extraFds: launch.extraFds,
        cgroupProcs: group?.procsFiles,
        rlimits: rlimitsFor(limits),
        stdin: exec.stdin,
        timeoutMs: exec.timeoutMs,
        graceMs: exec.graceMs,
        termSpareChild: launch.termSpareChild,
        innerStatus: launch.innerStatus,
        terminal: exec.tty ? { cols: exec.tty.cols, rows: exec.tty.rows, inside: Boolean(launch.terminalInside), onTerminal: exec.onTerminal } : undefined,
        ...(exec.onOutput ? { onOutput: exec.onOutput } : {}),
        outputCap: exec.outputCap,
        heartbeatMs: exec.heartbeatMs,
        signal: exec.signal,
        onEvent: (e) => {
          if (e.type === 'started') {
            supervisor = e.supervisorPid;
            this.running.set(supervisor, group);
          }
          exec.onEvent?.(e);
        },
      });
      const cg = group?.usage(); // what is left in the group is killed by destroy() below
      const stdout = r.stdout.bytes();
      const stderr = r.stderr.bytes();
      keepScratch = launch.upperDir !== undefined;
      return {
        exitCode: r.exitCode,
        signal: r.signal,
        timedOut: r.timedOut,
        cancelled: r.cancelled,
        oomKilled: cg?.oomKilled ?? false,
        stdout,
        stderr,
        stdoutBytes: r.stdout.total,
        stderrBytes: r.stderr.total,
        truncated: r.stdout.truncated || r.stderr.truncated,
        durationMs: r.durationMs,
        usage: {
          peakMemoryBytes: cg?.peakMemoryBytes ?? r.usage.maxRssBytes,
          cpuUserMs: cg?.cpuUserMs ?? r.usage.cpuUserMs,
          cpuSystemMs: cg?.cpuSystemMs ?? r.usage.cpuSystemMs,
          cpuMs: (cg?.cpuUserMs ?? r.usage.cpuUserMs) + (cg?.cpuSystemMs ?? r.usage.cpuSystemMs),
          wallMs: r.durationMs,
          readBytes: r.usage.readBytes,
          writtenBytes: r.usage.writtenBytes,
        },
        upper: launch.upperDir !== undefined && scratch !== undefined ? { dir: launch.upperDir, opaque: r.opaque, release: () => removeScratch(scratch) } : undefined,
        warnings,
        stages: { mounting, executing: performance.now() - t1 },
      };
    } finally {
      this.running.delete(supervisor);
      // A cleanup failure must not lose the result (nor leave the upper directory unreleased).
      try {
        await group?.destroyAsync();
      } catch (e) {
        warnings.push(`cleanup: ${(e as Error).message}`);
      }
      try {
        if (scratch !== undefined && !keepScratch) removeScratch(scratch);
      } catch (e) {
        warnings.push(`cleanup: cannot remove the scratch directory ${scratch}: ${(e as Error).message}`);
      }
    }
  }

  /** Signals every process of the running execs but their supervisors (which must stay able to time out and reap). */
  private signalAll(sig: NodeJS.Signals): void {
    for (const [supervisor, group] of this.running) {
      const pids = (group ? group.pids() : descendants(supervisor)).filter((p) => p !== supervisor);
      for (const p of pids) {
        try {
          process.kill(p, sig);
        } catch {
          // already gone
        }
      }
    }
  }

  suspend(): void {
    this.signalAll('SIGSTOP');
  }

  resume(): void {
    this.signalAll('SIGCONT');
  }

  usage(): { processes: number; cpuMs: number; rssBytes: number } {
    let processes = 0;
    let cpuMs = 0;
    let rssBytes = 0;
    const tick = 100; // USER_HZ on Linux
    for (const [supervisor] of this.running)
      for (const p of descendants(supervisor)) {
        try {
          const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
          const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
          cpuMs += ((Number(f[11]) + Number(f[12])) * 1000) / tick;
          rssBytes += Number(f[21]) * 4096;
          processes++;
        } catch {
          // exited meanwhile
        }
      }
    return { processes, cpuMs, rssBytes };
  }

  async destroy(): Promise<void> {
    this.destroyed = true;
    this.signalAll('SIGCONT');
    this.signalAll('SIGKILL');
  }
}
