// The `namespace` backend: bubblewrap with new user, pid, ipc, uts, cgroup, mount and network
// namespaces, a read-only system-only root, the seccomp filter, and the workspace as an overlay
// whose upper directory is exactly what the command changed (ARCHITECTURE.md §3).
import { accessSync, closeSync, constants, fstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { release } from 'node:os';
import { delimiter, join } from 'node:path';
import type { Backend, Capabilities, ExecSpec, Sandbox, SandboxSpec } from './backend.ts';
import { buildBwrapArgs, SANDBOX_WORKSPACE } from './bwrap-args.ts';
import { detectCgroups, type CgroupLayout } from './cgroups.ts';
import { cgroupLimits } from './host-backend.ts';
import { buildSeccompFilter } from './seccomp-filter.ts';
import { removeScratch, SupervisedSandbox, type Launch } from './supervised-sandbox.ts';
import { innerStatusFd, runSupervised, scratchRoot, supervisorAvailable, supervisorPath, terminalControlFd } from './supervisor.ts';

export const DEFAULT_TMP_SIZE = 64 * 1024 * 1024;
/** bwrap gets the seccomp program on this fd (the supervisor's first extra fd). */
const SECCOMP_FD = 4;

export function findExecutable(name: string, path = process.env.PATH ?? '/usr/bin:/bin'): string | null {
  for (const dir of [...path.split(delimiter), '/usr/bin', '/bin', '/usr/local/bin']) {
    if (!dir) continue;
    const p = join(dir, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return null;
}

class NamespaceSandbox extends SupervisedSandbox {
  readonly backend = 'namespace' as const;
  /** The supervisor, bwrap, the pid namespace's init and the passive supervisor inside. */
  protected readonly pidsOverhead = 4;
  private readonly bwrap: string;
  private readonly seccomp: Buffer;

  constructor(spec: SandboxSpec, caps: Capabilities, cgroups: CgroupLayout | null, bwrap: string, seccomp: Buffer) {
    super(spec, caps, cgroups);
    this.bwrap = bwrap;
    this.seccomp = seccomp;
  }

  protected needsScratch(): boolean {
    return !this.spec.readonly;
  }

  protected launch(exec: ExecSpec, scratch: string): Launch {
    const limits = { ...this.spec.limits, ...exec.limits };
    const cwd = exec.cwd === '/' ? SANDBOX_WORKSPACE : SANDBOX_WORKSPACE + exec.cwd;
    // The supervisor also runs inside, passively, as the command's parent: it reports the command's
    // own end (bwrap's init would turn a signal into exit 128+N, and a missing program into exit 1).
    // With a terminal, the passive supervisor makes it inside, so it lives on the sandbox's devpts;
    // its control pipe comes through bwrap on the fd after the inner status fd.
    const pty = exec.tty ? { cols: exec.tty.cols, rows: exec.tty.rows, controlFd: terminalControlFd(1, true) } : undefined;
    const init = { path: supervisorPath(), statusFd: innerStatusFd(1), ...(pty ? { pty } : {}) };
    const common = { cwd, argv: exec.argv, env: exec.env, network: this.spec.network, tmpSizeBytes: limits.tmpSizeBytes ?? DEFAULT_TMP_SIZE, seccompFd: SECCOMP_FD, init, ...(exec.user ? { uid: exec.user.uid, gid: exec.user.gid } : {}) };
    const launch = { extraFds: [this.seccomp], termSpareChild: true, innerStatus: true, terminalInside: pty !== undefined };
    if (this.spec.readonly) return { ...launch, argv: [this.bwrap, ...buildBwrapArgs({ ...common, workspace: this.spec.checkout, readonly: true })] };
    const overlay = { lower: this.spec.checkout, upper: join(scratch, 'upper'), work: join(scratch, 'work'), merged: join(scratch, 'merged') };
    for (const d of [overlay.upper, overlay.work, overlay.merged]) mkdirSync(d);
    return { ...launch, argv: [this.bwrap, ...buildBwrapArgs({ ...common, workspace: overlay.merged, readonly: false })], overlay, upperDir: overlay.upper };
  }
}

export class NamespaceBackend implements Backend {
  readonly name = 'namespace' as const;
  private cached: Promise<{ caps: Capabilities; cgroups: CgroupLayout | null; bwrap: string | null; seccomp: Buffer }> | undefined;

  private inspect(): Promise<{ caps: Capabilities; cgroups: CgroupLayout | null; bwrap: string | null; seccomp: Buffer }> {
    this.cached ??= (async () => {
      let cgroups: CgroupLayout | null = null;
      try {
        cgroups = detectCgroups();
      } catch {
        cgroups = null;
      }
      const bwrap = findExecutable('bwrap');
      const seccomp = buildSeccompFilter();
      let reason: string | undefined;
      if (!supervisorAvailable()) reason = 'the exec supervisor tools/bin/corral-run is missing: run make setup (needs gcc)';
      else if (!bwrap) reason = 'bubblewrap is not installed: apt-get install bubblewrap';
      else reason = await cachedTry(bwrap, seccomp);
      const cg = cgroupLimits(cgroups);
      const caps: Capabilities = {
        backend: 'namespace',
        available: reason === undefined,
        ...(reason ? { reason } : {}),
        isolation: { filesystem: true, network: true, process: true, syscalls: true, user: true },
        limits: { ...cg, wallTime: true, openFiles: true, fileSize: true, tmpSize: true },
        changeDetection: 'overlay',
        snapshots: true,
        // The passive supervisor inside makes the terminal on the sandbox's own devpts (bwrap --dev).
        pty: reason === undefined,
        profiles: [],
        notes: [
          'bubblewrap: new user, pid, ipc, uts, cgroup, mount and network namespaces; read-only system directories only; seccomp filter; no capabilities',
          'the workspace is an overlay of the vault\'s warm checkout: the upper directory is the change set',
          cg.memory ? 'memory, pids and cpu limits through cgroups' : 'no writable cgroups: memory, pids and cpu limits cannot be enforced',
        ],
      };
      return { caps, cgroups, bwrap, seccomp };
    })();
    return this.cached;
  }

  async probe(): Promise<Capabilities> {
    return (await this.inspect()).caps;
  }

  async health(): Promise<{ ok: boolean; warnings: string[] }> {
    const { caps } = await this.inspect();
    return { ok: caps.available, warnings: caps.available ? [] : [caps.reason ?? 'unavailable'] };
  }

  async create(spec: SandboxSpec): Promise<Sandbox> {
    const { caps, cgroups, bwrap, seccomp } = await this.inspect();
    return new NamespaceSandbox(spec, caps, cgroups, bwrap ?? 'bwrap', seccomp);
  }
}

/**
 * trySandbox, remembered on tmpfs (gone at reboot) for as long as bwrap, the supervisor, the kernel
 * and the uid stay the same: each CLI call would otherwise pay for a trial sandbox.
 */
async function cachedTry(bwrap: string, seccomp: Buffer): Promise<string | undefined> {
  const stamp = (p: string): string => {
    const st = statSync(p);
    return `${st.size}:${st.mtimeMs}`;
  };
  const key = JSON.stringify([bwrap, stamp(bwrap), supervisorPath(), stamp(supervisorPath()), release(), process.getuid?.()]);
  let file: string;
  try {
    file = join(scratchRoot(), 'namespace-probe.json'); // scratchRoot() checks the directory is ours
  } catch (e) {
    return `${(e as Error).message} — run corral doctor`;
  }
  const cached = readOwnFile(file);
  if (cached !== undefined) {
    try {
      const parsed = JSON.parse(cached) as { key: string; ok: boolean };
      if (parsed.key === key && parsed.ok) return undefined;
    } catch {
      // unreadable: probe again
    }
  }
  const reason = await trySandbox(bwrap, seccomp);
  if (reason === undefined) {
    const tmp = `${file}.${process.pid}`;
    writeFileSync(tmp, JSON.stringify({ key, ok: true }), { mode: 0o600 });
    renameSync(tmp, file);
  }
  return reason;
}

/** A file's text if it is a regular file (not a symlink) of this user's that no one else may write. */
export function readOwnFile(file: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    const uid = process.getuid?.();
    if (!st.isFile() || (uid !== undefined && st.uid !== uid) || st.mode & 0o022) return undefined;
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/** A real try: an overlay mounted in a user namespace with bwrap and the seccomp filter on top. Undefined when it works. */
async function trySandbox(bwrap: string, seccomp: Buffer): Promise<string | undefined> {
  let dir: string;
  try {
    dir = mkdtempSync(join(scratchRoot(), `x-${process.pid}-probe-`));
  } catch (e) {
    return `${(e as Error).message} — run corral doctor`;
  }
  try {
    const o = { lower: join(dir, 'lower'), upper: join(dir, 'upper'), work: join(dir, 'work'), merged: join(dir, 'merged') };
    for (const d of Object.values(o)) mkdirSync(d);
    writeFileSync(join(o.lower, 'probe'), 'x');
    const args = buildBwrapArgs({ workspace: o.merged, readonly: false, cwd: SANDBOX_WORKSPACE, argv: ['/bin/sh', '-c', 'echo y > probe'], env: { PATH: '/usr/bin:/bin' }, network: false, tmpSizeBytes: 1 << 20, seccompFd: SECCOMP_FD });
    const r = await runSupervised({ argv: [bwrap, ...args], env: { PATH: '/usr/bin:/bin' }, overlay: o, extraFds: [seccomp], timeoutMs: 10_000, graceMs: 500, outputCap: 4096 });
    if (r.exitCode !== 0) return `a test sandbox failed (exit ${r.exitCode ?? r.signal}): ${r.stderr.bytes().toString('utf8').trim().slice(0, 300)} — run corral doctor`;
    return undefined;
  } catch (e) {
    return `${(e as Error).message} — run corral doctor`;
  } finally {
    removeScratch(dir);
  }
}
