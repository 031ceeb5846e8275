// What this machine offers for isolation, and why not when it does not: bubblewrap, user
// namespaces, overlayfs in a user namespace, cgroups, seccomp, Landlock, KVM, the environment
// (container, WSL), and the supervisor helper. Real tries run in parallel; the probe never throws.
import { execFile } from 'node:child_process';
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join, resolve } from 'node:path';
import { detectCgroups, type CgroupLayout } from './cgroups.ts';

export interface DoctorCheck {
  id: string;
  ok: boolean;
  summary: string;
  detail?: string;
  /** The command (or step) that fixes it. */
  fix?: string;
}

export type BackendName = 'host' | 'namespace';

export interface MachineFacts {
  kernel: string;
  arch: string;
  root: boolean;
  uid: number;
  bwrap: { path: string; version: string | null } | null;
  /** A real `bwrap` run with every namespace Corral uses succeeded. */
  bwrapSandbox: boolean;
  userns: { works: boolean; sysctls: Record<string, string> };
  overlayInUserns: boolean;
  cgroups: CgroupLayout;
  seccomp: { supported: boolean; actions: string[]; mode: number | null };
  landlock: { enabled: boolean | null; abi: number | null };
  kvm: { present: boolean; accessible: boolean };
  environment: { container: string | null; wsl: boolean };
  supervisor: { path: string; executable: boolean };
}

export interface MachineReport {
  kind: 'corral.doctor';
  version: 1;
  backends: { host: { available: true; notes: string[] }; namespace: { available: boolean; reason?: string } };
  auto: BackendName;
  checks: DoctorCheck[];
  facts: MachineFacts;
  /** How long the probe took. */
  elapsedMs: number;
}

export interface ProbeOptions {
  /** The supervisor helper; default tools/bin/corral-run in this checkout. */
  supervisorPath?: string;
  /** Per real try. */
  timeoutMs?: number;
  /** Where the overlay try makes its scratch directories (default /dev/shm). */
  scratchDir?: string;
}

interface Try {
  ok: boolean;
  out: string;
}

function tryRun(file: string, args: string[], timeoutMs: number): Promise<Try> {
  return new Promise((done) => {
    try {
      execFile(file, args, { timeout: timeoutMs, encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } }, (err, stdout, stderr) =>
        done({ ok: !err, out: `${stdout}${stderr}`.trim() }),
      );
    } catch (e) {
      done({ ok: false, out: (e as Error).message });
    }
  });
}

function read(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function which(name: string): string | null {
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/bin', '/bin', '/usr/local/bin', '/usr/sbin']);
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      if (statSync(p).isFile()) return p;
    } catch {
      // Not here.
    }
  }
  return null;
}

function access(path: string, mode: number): boolean {
  try {
    accessSync(path, mode);
    return true;
  } catch {
    return false;
  }
}

const SYSCTLS = ['kernel.unprivileged_userns_clone', 'user.max_user_namespaces', 'kernel.apparmor_restrict_unprivileged_userns'];

function readSysctls(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const s of SYSCTLS) {
    const v = read(`/proc/sys/${s.replace(/\./g, '/')}`);
    if (v !== null) out[s] = v.trim();
  }
  return out;
}

/** Overlayfs inside an unprivileged user+mount namespace, tried for real in a scratch directory. */
async function tryOverlay(unshare: string | null, scratch: string, timeoutMs: number): Promise<Try> {
  if (!unshare) return { ok: false, out: 'unshare (util-linux) is missing' };
  let dir: string | null = null;
  try {
    dir = mkdtempSync(join(scratch, 'corral-probe-'));
    // The overlay's work dir ends up mode 000: remove it inside the namespace, where we may.
    const script = 'cd "$1" && mkdir l u w m && echo x > l/f && mount -t overlay overlay -o lowerdir=l,upperdir=u,workdir=w,userxattr m && echo y > m/g && test -f u/g && test -f m/f; r=$?; umount m 2>/dev/null; rm -rf w; exit $r';
    return await tryRun(unshare, ['-Urm', '/bin/sh', '-c', script, 'sh', dir], timeoutMs);
  } catch (e) {
    return { ok: false, out: (e as Error).message };
  } finally {
    try {
      if (dir) rmSync(dir, { recursive: true, force: true });
    } catch {
      // A leftover scratch directory on tmpfs is harmless; the probe must not fail for it.
    }
  }
}

/** Landlock's ABI version via landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION), through Python's ctypes when present. */
async function tryLandlock(timeoutMs: number): Promise<number | null> {
  const python = ['/usr/bin/python3'].find((p) => existsSync(p));
  if (!python || (process.arch !== 'x64' && process.arch !== 'arm64')) return null;
  const r = await tryRun(python, ['-I', '-S', '-c', 'import ctypes; print(ctypes.CDLL(None, use_errno=True).syscall(444, None, 0, 1))'], timeoutMs);
  const n = Number(r.out.trim());
  return r.ok && Number.isInteger(n) ? n : null;
}

function detectContainer(): string | null {
  if (existsSync('/.dockerenv')) return 'docker';
  if (existsSync('/run/.containerenv')) return 'podman';
  const env = read('/proc/1/environ') ?? '';
  const m = /(?:^|\0)container=([^\0]+)/.exec(env);
  if (m) return m[1]!;
  const cg = read('/proc/1/cgroup') ?? '';
  if (/docker|kubepods|containerd|lxc|libpod/.test(cg)) return 'container';
  return null;
}

function userNsFix(sysctls: Record<string, string>): string {
  if (sysctls['kernel.apparmor_restrict_unprivileged_userns'] === '1') return 'sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (or add an AppArmor profile allowing userns for bwrap)';
  if (sysctls['kernel.unprivileged_userns_clone'] === '0') return 'sysctl -w kernel.unprivileged_userns_clone=1';
  if (sysctls['user.max_user_namespaces'] === '0') return 'sysctl -w user.max_user_namespaces=15000';
  return 'enable user namespaces in the kernel (CONFIG_USER_NS) or the container runtime (e.g. docker run --security-opt seccomp=unconfined, or --privileged)';
}

const DEFAULT_SUPERVISOR = resolve(import.meta.dirname, '../../tools/bin/corral-run');

/** Probes the machine. Never throws: a failing probe becomes a failed check. */
export async function probeMachine(options: ProbeOptions = {}): Promise<MachineReport> {
  const started = performance.now();
  const timeoutMs = options.timeoutMs ?? 3000;
  const scratch = options.scratchDir ?? (existsSync('/dev/shm') ? '/dev/shm' : tmpdir());
  const uid = process.getuid?.() ?? -1;
  const kernel = (read('/proc/sys/kernel/osrelease') ?? 'unknown').trim();
  const bwrapPath = which('bwrap');
  const unsharePath = which('unshare');

  const [bwrapVersion, bwrapRun, unshareRun, overlay, landlockAbi] = await Promise.all([
    bwrapPath ? tryRun(bwrapPath, ['--version'], timeoutMs) : Promise.resolve({ ok: false, out: '' }),
    bwrapPath
      ? tryRun(bwrapPath, ['--unshare-all', '--unshare-cgroup-try', '--die-with-parent', '--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp', '--', 'true'], timeoutMs)
      : Promise.resolve({ ok: false, out: 'bubblewrap is missing' }),
    unsharePath ? tryRun(unsharePath, ['-U', 'true'], timeoutMs) : Promise.resolve({ ok: false, out: 'unshare (util-linux) is missing' }),
    tryOverlay(unsharePath, scratch, timeoutMs),
    tryLandlock(timeoutMs),
  ]);

  const sysctls = readSysctls();
  const userns = unsharePath ? unshareRun.ok : bwrapRun.ok;
  let cgroups: CgroupLayout;
  try {
    cgroups = detectCgroups();
  } catch (e) {
    cgroups = { controllers: {}, unified: null, notes: [`cannot read the cgroup layout: ${(e as Error).message}`] };
  }
  const status = read('/proc/self/status') ?? '';
  const seccompMode = /^Seccomp:\s*(\d+)/m.exec(status);
  const actions = (read('/proc/sys/kernel/seccomp/actions_avail') ?? '').trim().split(/\s+/).filter(Boolean);
  const lsm = read('/sys/kernel/security/lsm');
  const landlockEnabled = landlockAbi !== null ? landlockAbi > 0 : lsm !== null ? lsm.split(',').includes('landlock') : null;
  const kvmPresent = existsSync('/dev/kvm');
  const supervisorPath = options.supervisorPath ?? DEFAULT_SUPERVISOR;

  const facts: MachineFacts = {
    kernel,
    arch: process.arch,
    root: uid === 0,
    uid,
    bwrap: bwrapPath ? { path: bwrapPath, version: bwrapVersion.ok ? (/([\d.]+)/.exec(bwrapVersion.out)?.[1] ?? bwrapVersion.out) : null } : null,
    bwrapSandbox: bwrapRun.ok,
    userns: { works: userns, sysctls },
    overlayInUserns: overlay.ok,
    cgroups,
    seccomp: { supported: seccompMode !== null && actions.includes('errno'), actions, mode: seccompMode ? Number(seccompMode[1]) : null },
    landlock: { enabled: landlockEnabled, abi: landlockAbi !== null && landlockAbi > 0 ? landlockAbi : null },
    kvm: { present: kvmPresent, accessible: kvmPresent && access('/dev/kvm', constants.R_OK | constants.W_OK) },
    environment: { container: detectContainer(), wsl: /microsoft/i.test(read('/proc/version') ?? '') },
    supervisor: { path: supervisorPath, executable: access(supervisorPath, constants.X_OK) },
  };

  const checks: DoctorCheck[] = [];
  const archOk = process.arch === 'x64' || process.arch === 'arm64';
  checks.push({
    id: 'kernel',
    ok: archOk,
    summary: `Linux ${kernel} on ${process.arch}${facts.root ? ', running as root' : `, running as uid ${uid}`}`,
    ...(archOk ? {} : { detail: 'the seccomp filter covers x86_64 and aarch64 only', fix: 'run Corral on x86_64 or aarch64 (the host backend works elsewhere)' }),
  });
  const env = facts.environment;
  checks.push({
    id: 'environment',
    ok: true,
    summary: env.wsl ? 'WSL' : env.container ? `inside a container (${env.container})` : 'not inside a container',
    ...(env.container ? { detail: 'a container runtime may block user namespaces or cgroup writes; the checks below say what works' } : {}),
  });
  checks.push(
    facts.bwrap
      ? { id: 'bubblewrap', ok: facts.bwrap.version !== null, summary: `bubblewrap ${facts.bwrap.version ?? '(version unknown)'} at ${facts.bwrap.path}`, ...(facts.bwrap.version ? {} : { detail: bwrapVersion.out, fix: 'apt-get install -y bubblewrap' }) }
      : { id: 'bubblewrap', ok: false, summary: 'bubblewrap is not installed', fix: 'apt-get install -y bubblewrap' },
  );
  checks.push({
    id: 'userns',
    ok: userns,
    summary: userns ? 'user namespaces work' : 'user namespaces cannot be created',
    detail: [Object.entries(sysctls).map(([k, v]) => `${k}=${v}`).join(', '), userns ? '' : (unsharePath ? unshareRun : bwrapRun).out].filter(Boolean).join('; ') || undefined,
    ...(userns ? {} : { fix: userNsFix(sysctls) }),
  });
  checks.push({
    id: 'bwrap-sandbox',
    ok: bwrapRun.ok,
    summary: bwrapRun.ok ? 'bubblewrap runs a command in new user, pid, net, ipc, uts, cgroup and mount namespaces' : 'bubblewrap cannot start a sandbox',
    ...(bwrapRun.ok ? {} : { detail: bwrapRun.out || undefined, fix: facts.bwrap ? userNsFix(sysctls) : 'apt-get install -y bubblewrap' }),
  });
  checks.push({
    id: 'overlay-userns',
    ok: overlay.ok,
    summary: overlay.ok ? 'overlayfs mounts inside a user namespace' : 'overlayfs cannot be mounted inside a user namespace',
    ...(overlay.ok ? {} : { detail: overlay.out || undefined, fix: 'use Linux >= 5.11 with overlayfs (modprobe overlay); without it, execs copy the checkout instead of layering it' }),
  });
  const writable = (['memory', 'pids', 'cpu', 'cpuacct', 'freezer'] as const).filter((c) => cgroups.controllers[c]?.writable);
  const present = (['memory', 'pids', 'cpu', 'cpuacct', 'freezer'] as const).filter((c) => cgroups.controllers[c]);
  const limitsOk = ['memory', 'pids', 'cpu'].every((c) => writable.includes(c as 'memory'));
  const describe = (c: (typeof present)[number]): string => `${c} (v${cgroups.controllers[c]!.version}${cgroups.controllers[c]!.writable ? '' : ', read-only'})`;
  checks.push({
    id: 'cgroups',
    ok: limitsOk,
    summary: limitsOk
      ? `cgroups: memory, pids and cpu limits can be enforced (${present.map(describe).join(', ')})`
      : `cgroups: ${writable.length === 0 ? 'no controller is writable' : `only ${writable.join(', ')} writable`}: memory/pids/cpu limits cannot all be enforced`,
    detail: [
      cgroups.unified ? `v2 at ${cgroups.unified.path} (${cgroups.unified.controllers.join(' ') || 'no controllers'}${cgroups.unified.writable ? ', writable: freeze and kill' : ', read-only'})` : 'no v2 tree',
      ...cgroups.notes,
    ].join('; '),
    ...(limitsOk ? {} : { fix: facts.root ? 'mount the cgroup controllers read-write (a container needs --cgroupns=private and a writable /sys/fs/cgroup)' : 'run Corral as root, or in a delegated cgroup: systemd-run --user --scope -p Delegate=yes corral ...' }),
  });
  checks.push({
    id: 'seccomp',
    ok: facts.seccomp.supported,
    summary: facts.seccomp.supported ? `seccomp filters available (actions: ${actions.join(' ')})` : 'seccomp filtering is not available',
    ...(facts.seccomp.mode === 2 ? { detail: 'Corral itself already runs under a seccomp filter; the sandbox adds its own on top' } : {}),
    ...(facts.seccomp.supported ? {} : { fix: 'use a kernel built with CONFIG_SECCOMP_FILTER' }),
  });
  checks.push({
    id: 'landlock',
    ok: landlockEnabled === true,
    summary: facts.landlock.abi !== null ? `Landlock ABI ${facts.landlock.abi}` : landlockEnabled === true ? 'Landlock enabled' : landlockEnabled === false ? 'Landlock not enabled' : 'Landlock unknown (no /sys/kernel/security/lsm, no python3 to ask the kernel)',
    ...(landlockEnabled === true ? {} : { detail: 'optional: a further file access restriction', fix: 'boot with lsm=landlock,... on the kernel command line (CONFIG_SECURITY_LANDLOCK=y)' }),
  });
  checks.push({
    id: 'kvm',
    ok: facts.kvm.accessible,
    summary: facts.kvm.accessible ? '/dev/kvm is present and usable' : facts.kvm.present ? '/dev/kvm is present but not accessible' : '/dev/kvm is missing',
    ...(facts.kvm.accessible
      ? { detail: `optional: for a future micro-VM backend${existsSync('/sys/module/kvm_pvm') ? '; paravirtual KVM (kvm-pvm): a stock guest kernel does not boot, a purpose-built one is needed' : ''}` }
      : { detail: 'optional: for a future micro-VM backend', fix: facts.kvm.present ? 'usermod -aG kvm $USER (then log in again)' : 'enable hardware or nested virtualization for this machine' }),
  });
  checks.push({
    id: 'supervisor',
    ok: facts.supervisor.executable,
    summary: facts.supervisor.executable ? `supervisor helper at ${supervisorPath}` : `supervisor helper ${supervisorPath} is missing or not executable`,
    ...(facts.supervisor.executable ? {} : { fix: 'run `make setup` in the Corral checkout: it builds tools/bin/corral-run from native/corral-run.c (needs a C compiler: apt-get install -y gcc)' }),
  });

  const nsProblems: string[] = [];
  if (!facts.bwrap) nsProblems.push('bubblewrap is not installed');
  else if (!bwrapRun.ok) nsProblems.push(`bubblewrap cannot start a sandbox${userns ? '' : ' (user namespaces are unavailable)'}`);
  if (!facts.seccomp.supported) nsProblems.push('seccomp filtering is unavailable');
  if (!archOk) nsProblems.push(`the seccomp filter does not cover ${process.arch}`);
  const nsAvailable = nsProblems.length === 0;
  const hostNotes = ['no isolation: commands run as this user on this machine; only the policy and the limits Corral can enforce apply'];
  if (!limitsOk) hostNotes.push('cgroup limits are not fully enforceable here (see the cgroups check)');
  return {
    kind: 'corral.doctor',
    version: 1,
    backends: { host: { available: true, notes: hostNotes }, namespace: nsAvailable ? { available: true } : { available: false, reason: nsProblems.join('; ') } },
    auto: nsAvailable ? 'namespace' : 'host',
    checks,
    facts,
    elapsedMs: Math.round(performance.now() - started),
  };
}
