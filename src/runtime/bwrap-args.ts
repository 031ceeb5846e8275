// The bubblewrap command line for one exec, built by a pure function (no filesystem access) so
// it can be unit-tested and reviewed as a whole. Only system directories are visible, read-only;
// the workspace is the one writable host path; /tmp is a private, size-bounded tmpfs.
import { posix } from 'node:path';
import { CorralError } from '../protocol/errors.ts';
import { terminalSizeProblem } from '../protocol/terminal-size.ts';

export interface BwrapSpec {
  /** Host directory mounted at /workspace (absolute). */
  workspace: string;
  /** Mount the workspace read-only. */
  readonly: boolean;
  /** Absolute path inside the sandbox, under /workspace. */
  cwd: string;
  argv: string[];
  /** The complete environment: nothing else is inherited. */
  env: Record<string, string>;
  /** false: a private network namespace with loopback only. */
  network: boolean;
  /** Size of the private /tmp (and /dev/shm) tmpfs: writes beyond it fail with ENOSPC. */
  tmpSizeBytes: number;
  /** A readable fd (in bwrap's fd table) holding the seccomp program, see seccomp-filter.ts. */
  seccompFd?: number;
  /** Default 'corral'. */
  hostname?: string;
  /** Inside the sandbox; default: the caller's. */
  uid?: number;
  gid?: number;
  /**
   * Default true: setsid() so the command cannot reach the caller's terminal. A PTY exec keeps it:
   * the terminal is made inside by the passive supervisor (init.pty), whose child starts its own
   * session on it, after bwrap's setsid; the seccomp filter refuses TIOCSTI/TIOCLINUX either way.
   */
  newSession?: boolean;
  /** Further host paths shown read-only at the same place (e.g. /opt/toolchain), when present. */
  extraReadOnly?: string[];
  /**
   * The supervisor binary, run passively inside the sandbox as the command's parent so the command's
   * real exit status (a signal, not bwrap's 128+N) is reported on `statusFd`. With `pty` it also
   * makes the command's pseudo-terminal and reads resizes from `pty.controlFd` (corral-run --pty).
   */
  init?: { path: string; statusFd: number; pty?: { cols: number; rows: number; controlFd: number } };
}

/** Where the sandbox sees the passive supervisor. */
export const SANDBOX_INIT = '/run/corral/init';

export const SANDBOX_WORKSPACE = '/workspace';

/** System directories shown read-only when present on the host (merged-/usr symlinks follow). */
export const SYSTEM_DIRS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/**
 * The pieces of /etc that running programs need. Not /etc as a whole: it holds shadow, ssh host
 * keys, ssl/private, sudoers, credentials of services.
 */
export const ETC_FILES = [
  '/etc/ld.so.cache', '/etc/ld.so.conf', '/etc/ld.so.conf.d', '/etc/alternatives', '/etc/passwd', '/etc/group',
  '/etc/nsswitch.conf', '/etc/localtime', '/etc/timezone', '/etc/locale.alias', '/etc/ssl/certs', '/etc/ssl/openssl.cnf',
  '/etc/ca-certificates', '/etc/ca-certificates.conf', '/etc/mime.types', '/etc/magic', '/etc/bash.bashrc', '/etc/inputrc',
  '/etc/profile', '/etc/terminfo', '/etc/os-release', '/etc/debian_version', '/etc/python3', '/etc/python3.11', '/etc/perl',
];

/** Name resolution and network configuration: only when the sandbox has the network. */
export const ETC_NETWORK_FILES = ['/etc/resolv.conf', '/etc/hosts', '/etc/host.conf', '/etc/gai.conf', '/etc/services', '/etc/protocols'];

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HOSTNAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

function invalid(message: string, details: Record<string, unknown>): CorralError {
  return new CorralError('INVALID_ARGUMENT', message, details);
}

function checkId(what: 'uid' | 'gid', v: number | undefined): void {
  if (v !== undefined && !(Number.isInteger(v) && v >= 0 && v < 0xffffffff)) throw invalid(`${what} must be a whole number from 0, got ${v}`, { [what]: v });
}

function checkHostPath(what: string, p: string): void {
  if (!posix.isAbsolute(p) || p.includes('\0') || posix.normalize(p) !== p.replace(/(.)\/+$/, '$1'))
    throw invalid(`${what} must be a normalized absolute host path, got '${p}'`, { path: p });
}

/** The sandbox cwd, normalized; it must lie under /workspace. */
export function sandboxCwd(cwd: string): string {
  if (cwd.includes('\0') || !cwd.startsWith('/')) throw invalid(`the working directory must be an absolute path under ${SANDBOX_WORKSPACE}, got '${cwd}'`, { cwd });
  const n = posix.normalize(cwd).replace(/(.)\/+$/, '$1');
  if (n !== SANDBOX_WORKSPACE && !n.startsWith(SANDBOX_WORKSPACE + '/'))
    throw invalid(`the working directory must be under ${SANDBOX_WORKSPACE}, got '${cwd}'`, { cwd });
  return n;
}

/** bwrap's options for `spec`, then `--`, then the command's argv. */
export function buildBwrapArgs(spec: BwrapSpec): string[] {
  checkHostPath('the workspace', spec.workspace);
  const cwd = sandboxCwd(spec.cwd);
  if (spec.argv.length === 0 || spec.argv.some((a) => a.includes('\0'))) throw invalid('the command is empty or holds a NUL byte', { argv: spec.argv });
  if (!Number.isSafeInteger(spec.tmpSizeBytes) || spec.tmpSizeBytes < 4096) throw invalid(`the /tmp size must be a whole number of bytes, at least 4096, got ${spec.tmpSizeBytes}`, { tmpSizeBytes: spec.tmpSizeBytes });
  checkId('uid', spec.uid);
  checkId('gid', spec.gid);
  const hostname = spec.hostname ?? 'corral';
  if (!HOSTNAME.test(hostname)) throw invalid(`the hostname must be letters, digits and '-' (at most 63), got '${hostname}'`, { hostname });
  if (spec.init) checkHostPath('the supervisor', spec.init.path);
  if (spec.init && !(Number.isInteger(spec.init.statusFd) && spec.init.statusFd >= 3 && spec.init.statusFd !== spec.seccompFd))
    throw invalid(`the supervisor's status fd must be 3 or more and not the seccomp fd, got ${spec.init.statusFd}`, { statusFd: spec.init.statusFd });
  const pty = spec.init?.pty;
  if (pty) {
    const problem = terminalSizeProblem({ cols: pty.cols, rows: pty.rows });
    if (problem) throw invalid(problem, { cols: pty.cols, rows: pty.rows });
    if (!(Number.isInteger(pty.controlFd) && pty.controlFd >= 3 && pty.controlFd !== spec.seccompFd && pty.controlFd !== spec.init!.statusFd))
      throw invalid(`the terminal's control fd must be 3 or more and neither the seccomp nor the status fd, got ${pty.controlFd}`, { controlFd: pty.controlFd });
  }
  if (spec.seccompFd !== undefined && !(Number.isInteger(spec.seccompFd) && spec.seccompFd >= 3))
    throw invalid(`the seccomp fd must be 3 or more (0-2 are stdio), got ${spec.seccompFd}`, { seccompFd: spec.seccompFd });
  for (const p of spec.extraReadOnly ?? []) {
    checkHostPath('a read-only path', p);
    if (p === '/' || p === SANDBOX_WORKSPACE || p.startsWith(SANDBOX_WORKSPACE + '/') || ['/proc', '/dev', '/tmp'].some((r) => p === r || p.startsWith(r + '/')))
      throw invalid(`'${p}' cannot be shown read-only: it is the root or a place the sandbox mounts itself`, { path: p });
  }

  const args: string[] = [];
  // Namespaces: everything but the network when it is allowed.
  args.push('--unshare-user', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try');
  if (!spec.network) args.push('--unshare-net');
  // No nested user namespaces (the seccomp filter refuses them too).
  args.push('--disable-userns');
  args.push('--die-with-parent');
  if (spec.newSession !== false) args.push('--new-session');
  args.push('--cap-drop', 'ALL');
  args.push('--hostname', hostname);
  if (spec.uid !== undefined) args.push('--uid', String(spec.uid));
  if (spec.gid !== undefined) args.push('--gid', String(spec.gid));

  args.push('--clearenv');
  for (const [k, v] of Object.entries(spec.env)) {
    if (!ENV_NAME.test(k)) throw invalid(`'${k}' is not a valid environment variable name (letters, digits, '_')`, { name: k });
    if (v.includes('\0')) throw invalid(`the value of ${k} holds a NUL byte`, { name: k });
    args.push('--setenv', k, v);
  }

  // The root is bwrap's own tmpfs; only what is bound below is visible. Directories bwrap
  // creates on the way are 0700 by default: make them traversable for any sandbox uid.
  for (const d of ['/etc', '/etc/ssl', '/var']) args.push('--perms', '0755', '--dir', d);
  for (const d of SYSTEM_DIRS) args.push('--ro-bind-try', d, d);
  for (const f of ETC_FILES) args.push('--ro-bind-try', f, f);
  if (spec.network) for (const f of ETC_NETWORK_FILES) args.push('--ro-bind-try', f, f);
  for (const p of spec.extraReadOnly ?? []) args.push('--ro-bind-try', p, p);
  args.push('--proc', '/proc');
  // Sysctl writes are gated on the host uid being 0, not on capabilities: when Corral runs as root
  // the sandbox is host uid 0 (no caps) and could set kernel.core_pattern or kernel.modprobe (host
  // code execution). bwrap covers /proc/sys only when the directory itself passes access(W_OK).
  args.push('--ro-bind-try', '/proc/sys', '/proc/sys');
  args.push('--dev', '/dev');
  const size = String(spec.tmpSizeBytes);
  args.push('--size', size, '--tmpfs', '/dev/shm');
  args.push('--size', size, '--tmpfs', '/tmp');
  args.push('--symlink', '../tmp', '/var/tmp');
  args.push(spec.readonly ? '--ro-bind' : '--bind', spec.workspace, SANDBOX_WORKSPACE);
  if (spec.init) args.push('--perms', '0755', '--dir', '/run', '--perms', '0755', '--dir', '/run/corral', '--ro-bind', spec.init.path, SANDBOX_INIT);
  // Last: the root tmpfs and /dev's tmpfs become read-only; mounts on them (/tmp, /dev/shm, /workspace) keep their own mode.
  args.push('--remount-ro', '/dev');
  args.push('--remount-ro', '/');
  if (spec.seccompFd !== undefined) args.push('--seccomp', String(spec.seccompFd));
  args.push('--chdir', cwd);
  if (spec.init) {
    args.push('--', SANDBOX_INIT, '--passive', '--status-fd', String(spec.init.statusFd));
    if (pty) args.push('--pty', `${pty.cols}x${pty.rows}`, '--pty-control-fd', String(pty.controlFd));
    args.push('--', ...spec.argv);
  } else args.push('--', ...spec.argv);
  return args;
}
