// A classic BPF seccomp program, assembled here and handed to `bwrap --seccomp FD` as raw
// `struct sock_filter[]` bytes (8 bytes each: u16 code, u8 jt, u8 jf, u32 k, little-endian).
// It is a deny list on top of the namespaces: the sandboxed process keeps every ordinary syscall,
// and the ones that reach kernel attack surface or escape the namespaces fail with EPERM (not a
// kill, so tools print a clean "Operation not permitted"). socket() is an allow list by address family,
// since namespaces do not isolate every family (AF_VSOCK reaches the VM host whatever --unshare-net says).
import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { CorralError } from '../protocol/errors.ts';

export type SeccompArch = 'x64' | 'arm64';

// Classic BPF opcodes (linux/bpf_common.h).
export const BPF = {
  LD_W_ABS: 0x20, // A = u32 at offset k of seccomp_data
  JMP_JEQ_K: 0x15,
  JMP_JGE_K: 0x35,
  JMP_JSET_K: 0x45,
  RET_K: 0x06,
} as const;

export const SECCOMP_RET = {
  KILL_PROCESS: 0x80000000,
  ERRNO: 0x00050000,
  ALLOW: 0x7fff0000,
} as const;

export const AUDIT_ARCH = { x64: 0xc000003e, arm64: 0xc00000b7 } as const;

const EPERM = 1;
const ENOSYS = 38;
const EPROTONOSUPPORT = 93;
const EAFNOSUPPORT = 97;
/** x32 syscalls on x86_64 are numbered from here: another ABI with its own table, refused. */
export const X32_SYSCALL_BIT = 0x40000000;
/** Every CLONE_NEW* flag: NEWTIME, NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET. */
export const CLONE_NEW_MASK = 0x00000080 | 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000;
/** ioctls that inject input into or take over the controlling terminal. */
const TIOCSTI = 0x5412;
const TIOCLINUX = 0x541c;
/** personality() values Docker's default profile allows: PER_LINUX, PER_LINUX32, UNAME26 variants, and the query. */
const SAFE_PERSONALITIES = [0x0, 0x8, 0x20000, 0x20008, 0xffffffff];
/**
 * Address families socket()/socketpair() may create: AF_UNIX, AF_INET, AF_INET6, AF_NETLINK. Every
 * other one (AF_VSOCK, AF_PACKET, AF_ALG, AF_BLUETOOTH, AF_CAN, AF_KEY, AF_XDP, ...) answers EAFNOSUPPORT,
 * so programs see "Address family not supported" and fall back as they would on a kernel without it.
 */
export const ALLOWED_SOCKET_FAMILIES = { AF_UNIX: 1, AF_INET: 2, AF_INET6: 10, AF_NETLINK: 16 } as const;
/**
 * Netlink protocols allowed: NETLINK_ROUTE only (getifaddrs, `ip`). The rest (NETFILTER = nf_tables,
 * XFRM, SOCK_DIAG, AUDIT, GENERIC, ...) is kernel attack surface reachable with the namespace's
 * CAP_NET_ADMIN; they answer EPROTONOSUPPORT, what the kernel says for a protocol it lacks.
 */
export const ALLOWED_NETLINK_PROTOCOLS = { NETLINK_ROUTE: 0 } as const;

// seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]. Argument words are read
// low half only (little-endian: offset 16 + 8*i), which is where flags and ioctl numbers live.
const OFF_NR = 0;
const OFF_ARCH = 4;
const offArgLow = (i: number): number => 16 + 8 * i;

/**
 * Syscall numbers, from /usr/include/x86_64-linux-gnu/asm/unistd_64.h and the asm-generic table
 * arm64 uses. A name missing for an arch does not exist there (iopl, ioperm, uselib on arm64).
 */
export const SYSCALLS: Record<SeccompArch, Record<string, number>> = {
  x64: {
    ioctl: 16, clone: 56, uselib: 134, personality: 135, ptrace: 101, syslog: 103, vhangup: 153, pivot_root: 155, adjtimex: 159,
    acct: 163, settimeofday: 164, mount: 165, umount2: 166, swapon: 167, swapoff: 168, reboot: 169, iopl: 172, ioperm: 173,
    init_module: 175, delete_module: 176, quotactl: 179, nfsservctl: 180, lookup_dcookie: 212, clock_settime: 227,
    kexec_load: 246, add_key: 248, request_key: 249, keyctl: 250, unshare: 272, perf_event_open: 298,
    name_to_handle_at: 303, open_by_handle_at: 304, clock_adjtime: 305, setns: 308, process_vm_readv: 310,
    process_vm_writev: 311, finit_module: 313, kexec_file_load: 320, bpf: 321, userfaultfd: 323,
    open_tree: 428, move_mount: 429, fsopen: 430, fsconfig: 431, fsmount: 432, fspick: 433, clone3: 435,
    io_uring_setup: 425, io_uring_enter: 426, io_uring_register: 427, pidfd_getfd: 438, mount_setattr: 442, quotactl_fd: 443, open_tree_attr: 467,
    socket: 41, socketpair: 53,
  },
  arm64: {
    lookup_dcookie: 18, ioctl: 29, umount2: 39, mount: 40, pivot_root: 41, nfsservctl: 42, vhangup: 58, quotactl: 60,
    acct: 89, personality: 92, unshare: 97, kexec_load: 104, init_module: 105, delete_module: 106, clock_settime: 112,
    syslog: 116, ptrace: 117, reboot: 142, settimeofday: 170, adjtimex: 171, add_key: 217, request_key: 218, keyctl: 219,
    clone: 220, swapon: 224, swapoff: 225, perf_event_open: 241, name_to_handle_at: 264, open_by_handle_at: 265,
    clock_adjtime: 266, setns: 268, process_vm_readv: 270, process_vm_writev: 271, finit_module: 273, bpf: 280,
    userfaultfd: 282, kexec_file_load: 294, open_tree: 428, move_mount: 429, fsopen: 430, fsconfig: 431, fsmount: 432,
    fspick: 433, clone3: 435, io_uring_setup: 425, io_uring_enter: 426, io_uring_register: 427, pidfd_getfd: 438, mount_setattr: 442, quotactl_fd: 443, open_tree_attr: 467,
    socket: 198, socketpair: 199,
  },
};

/** Denied outright with EPERM, whatever the arguments. */
const ALWAYS_DENIED = [
  'ptrace', 'mount', 'umount2', 'pivot_root', 'setns', 'bpf', 'perf_event_open', 'keyctl', 'add_key', 'request_key',
  'kexec_load', 'kexec_file_load', 'init_module', 'finit_module', 'delete_module', 'reboot', 'swapon', 'swapoff',
  'userfaultfd', 'process_vm_readv', 'process_vm_writev', 'open_by_handle_at', 'name_to_handle_at', 'fsopen', 'fsmount',
  'fsconfig', 'fspick', 'move_mount', 'open_tree', 'open_tree_attr', 'mount_setattr', 'acct', 'settimeofday',
  'clock_settime', 'clock_adjtime', 'adjtimex', 'iopl', 'ioperm', 'lookup_dcookie', 'quotactl', 'quotactl_fd',
  'nfsservctl', 'syslog', 'vhangup', 'uselib',
  // io_uring bypasses seccomp for the operations it queues, and has been a steady source of kernel bugs.
  'io_uring_setup', 'io_uring_enter', 'io_uring_register',
  // Copies another process's descriptor: nothing in a sandbox needs it, and it reaches past fd hygiene.
  'pidfd_getfd',
];

export interface DeniedSyscall {
  name: string;
  nr: number;
  /** When it is refused and with which errno. */
  rule: 'always' | 'namespace-flags' | 'enosys' | 'ioctl-tty' | 'unsafe-personality' | 'socket-family';
  /** For 'socket-family': EAFNOSUPPORT for a refused family, EPROTONOSUPPORT for a refused netlink protocol. */
  errno: 'EPERM' | 'ENOSYS' | 'EAFNOSUPPORT';
}

/**
 * What the filter refuses on `arch`. `unshare` and `clone` are refused only when their flags
 * (args[0]) ask for a new namespace, so unshare(CLONE_FS) and ordinary fork/threads still work;
 * `clone3` keeps its flags in memory BPF cannot read, so it answers ENOSYS and libc falls back to clone.
 * `socket` and `socketpair` are refused unless args[0] is in ALLOWED_SOCKET_FAMILIES (and, for
 * AF_NETLINK, args[2] in ALLOWED_NETLINK_PROTOCOLS). There is no socketcall on x86_64/aarch64, and
 * io_uring (IORING_OP_SOCKET) is denied, so these two are the only ways to make a socket.
 */
export function deniedSyscalls(arch: SeccompArch = currentArch()): DeniedSyscall[] {
  const table = SYSCALLS[arch];
  const out: DeniedSyscall[] = [];
  for (const name of ALWAYS_DENIED) {
    const nr = table[name];
    if (nr !== undefined) out.push({ name, nr, rule: 'always', errno: 'EPERM' });
  }
  out.push({ name: 'clone', nr: table.clone!, rule: 'namespace-flags', errno: 'EPERM' });
  out.push({ name: 'unshare', nr: table.unshare!, rule: 'namespace-flags', errno: 'EPERM' });
  out.push({ name: 'clone3', nr: table.clone3!, rule: 'enosys', errno: 'ENOSYS' });
  out.push({ name: 'ioctl', nr: table.ioctl!, rule: 'ioctl-tty', errno: 'EPERM' });
  out.push({ name: 'personality', nr: table.personality!, rule: 'unsafe-personality', errno: 'EPERM' });
  out.push({ name: 'socket', nr: table.socket!, rule: 'socket-family', errno: 'EAFNOSUPPORT' });
  out.push({ name: 'socketpair', nr: table.socketpair!, rule: 'socket-family', errno: 'EAFNOSUPPORT' });
  return out;
}

function currentArch(): SeccompArch {
  if (process.arch === 'x64' || process.arch === 'arm64') return process.arch;
  throw new CorralError('BACKEND_UNAVAILABLE', `the seccomp filter supports x86_64 and aarch64 only, not ${process.arch}: use the host backend`, { arch: process.arch });
}

interface Insn {
  code: number;
  k: number;
  /** Jump targets as labels (resolved at the end) or 0 for the next instruction. */
  jt: string | 0;
  jf: string | 0;
  label?: string;
}

/** A tiny assembler: instructions with symbolic forward jumps, resolved into u8 offsets. */
class Program {
  private readonly insns: Insn[] = [];
  private pending: string | undefined;

  label(name: string): void {
    this.pending = name;
  }

  emit(code: number, k: number, jt: string | 0 = 0, jf: string | 0 = 0): void {
    const insn: Insn = { code, k: k >>> 0, jt, jf };
    if (this.pending !== undefined) insn.label = this.pending;
    this.pending = undefined;
    this.insns.push(insn);
  }

  assemble(): Buffer {
    const at = new Map<string, number>();
    this.insns.forEach((insn, i) => insn.label !== undefined && at.set(insn.label, i));
    const buf = Buffer.alloc(this.insns.length * 8);
    const offset = (from: number, target: string | 0): number => {
      if (target === 0) return 0;
      const to = at.get(target);
      if (to === undefined || to <= from) throw new Error(`seccomp assembler: bad jump target ${target}`);
      const off = to - from - 1;
      if (off > 255) throw new Error(`seccomp assembler: jump to ${target} is too far (${off})`);
      return off;
    };
    this.insns.forEach((insn, i) => {
      buf.writeUInt16LE(insn.code, i * 8);
      buf.writeUInt8(offset(i, insn.jt), i * 8 + 2);
      buf.writeUInt8(offset(i, insn.jf), i * 8 + 3);
      buf.writeUInt32LE(insn.k, i * 8 + 4);
    });
    return buf;
  }
}

/** The filter for `arch` as raw sock_filter bytes, ready for `bwrap --seccomp FD`. */
export function buildSeccompFilter(arch: SeccompArch = currentArch()): Buffer {
  const table = SYSCALLS[arch];
  const p = new Program();
  // Another ABI (i386 via int 0x80, or anything unexpected) has another syscall table: kill.
  p.emit(BPF.LD_W_ABS, OFF_ARCH);
  p.emit(BPF.JMP_JEQ_K, AUDIT_ARCH[arch], 'nr', 0);
  p.emit(BPF.RET_K, SECCOMP_RET.KILL_PROCESS);
  p.label('nr');
  p.emit(BPF.LD_W_ABS, OFF_NR);
  if (arch === 'x64') p.emit(BPF.JMP_JGE_K, X32_SYSCALL_BIT, 'eperm', 0);
  for (const d of deniedSyscalls(arch)) {
    const target = { always: 'eperm', 'namespace-flags': 'ns-flags', enosys: 'enosys', 'ioctl-tty': 'ioctl', 'unsafe-personality': 'personality', 'socket-family': 'socket' }[d.rule];
    p.emit(BPF.JMP_JEQ_K, table[d.name]!, target, 0);
  }
  p.emit(BPF.RET_K, SECCOMP_RET.ALLOW);

  p.label('ns-flags');
  p.emit(BPF.LD_W_ABS, offArgLow(0));
  p.emit(BPF.JMP_JSET_K, CLONE_NEW_MASK, 'eperm', 'allow');

  p.label('ioctl');
  p.emit(BPF.LD_W_ABS, offArgLow(1));
  p.emit(BPF.JMP_JEQ_K, TIOCSTI, 'eperm', 0);
  p.emit(BPF.JMP_JEQ_K, TIOCLINUX, 'eperm', 'allow');

  p.label('personality');
  p.emit(BPF.LD_W_ABS, offArgLow(0));
  SAFE_PERSONALITIES.forEach((v, i) => p.emit(BPF.JMP_JEQ_K, v, 'allow', i === SAFE_PERSONALITIES.length - 1 ? 'eperm' : 0));

  // socket(family, type, protocol) and socketpair(family, type, protocol, sv): the kernel takes
  // family and protocol as int, so their low words are exactly what it acts on.
  p.label('socket');
  p.emit(BPF.LD_W_ABS, offArgLow(0));
  p.emit(BPF.JMP_JEQ_K, ALLOWED_SOCKET_FAMILIES.AF_NETLINK, 'netlink', 0);
  const families = [ALLOWED_SOCKET_FAMILIES.AF_UNIX, ALLOWED_SOCKET_FAMILIES.AF_INET, ALLOWED_SOCKET_FAMILIES.AF_INET6];
  families.forEach((v, i) => p.emit(BPF.JMP_JEQ_K, v, 'allow', i === families.length - 1 ? 'eafnosupport' : 0));
  p.label('netlink');
  p.emit(BPF.LD_W_ABS, offArgLow(2));
  p.emit(BPF.JMP_JEQ_K, ALLOWED_NETLINK_PROTOCOLS.NETLINK_ROUTE, 'allow', 'eprotonosupport');
  p.label('allow');
  p.emit(BPF.RET_K, SECCOMP_RET.ALLOW);
  p.label('eperm');
  p.emit(BPF.RET_K, SECCOMP_RET.ERRNO | EPERM);
  p.label('enosys');
  p.emit(BPF.RET_K, SECCOMP_RET.ERRNO | ENOSYS);
  p.label('eafnosupport');
  p.emit(BPF.RET_K, SECCOMP_RET.ERRNO | EAFNOSUPPORT);
  p.label('eprotonosupport');
  p.emit(BPF.RET_K, SECCOMP_RET.ERRNO | EPROTONOSUPPORT);
  return p.assemble();
}

/**
 * A readable fd holding `program`, for `bwrap --seccomp FD`: the bytes go to an unlinked file
 * (private: 0600, random name, removed before return), so no other process can swap them.
 * Pass it in the child's stdio array (`stdio: ['pipe', 'pipe', 'pipe', fd]` makes it fd 3 in
 * bwrap, so `--seccomp 3`), then close it in the parent after spawn. A pipe works too
 * (`stdio[3] = 'pipe'`, write the bytes and end it), since the program fits a pipe buffer.
 */
export function seccompFd(program: Buffer, dir: string = process.platform === 'linux' ? '/dev/shm' : tmpdir()): number {
  const path = join(dir, `corral-seccomp-${process.pid}-${randomBytes(8).toString('hex')}`);
  const w = openSync(path, 'wx', 0o600);
  try {
    let done = 0;
    while (done < program.length) done += writeSync(w, program, done, program.length - done);
    return openSync(path, 'r');
  } finally {
    closeSync(w);
    unlinkSync(path);
  }
}
