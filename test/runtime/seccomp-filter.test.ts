import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, fstatSync, readSync } from 'node:fs';
import { AUDIT_ARCH, BPF, SECCOMP_RET, SYSCALLS, buildSeccompFilter, deniedSyscalls, seccompFd, type SeccompArch } from '../../src/runtime/seccomp-filter.ts';

interface SeccompData {
  nr: number;
  arch: number;
  args?: number[];
}

/** A classic BPF interpreter for the opcodes the filter may use; anything else fails the test. */
function run(program: Buffer, data: SeccompData): number {
  const mem = Buffer.alloc(64);
  mem.writeInt32LE(data.nr, 0);
  mem.writeUInt32LE(data.arch >>> 0, 4);
  (data.args ?? []).forEach((a, i) => mem.writeBigUInt64LE(BigInt(a), 16 + 8 * i));
  assert.equal(program.length % 8, 0);
  const n = program.length / 8;
  let a = 0;
  for (let pc = 0, steps = 0; pc < n; pc++, steps++) {
    assert.ok(steps <= n, 'programs only jump forward');
    const code = program.readUInt16LE(pc * 8);
    const jt = program.readUInt8(pc * 8 + 2);
    const jf = program.readUInt8(pc * 8 + 3);
    const k = program.readUInt32LE(pc * 8 + 4);
    switch (code) {
      case BPF.LD_W_ABS:
        assert.ok(k % 4 === 0 && k + 4 <= 64, `aligned load inside seccomp_data: ${k}`);
        a = mem.readUInt32LE(k);
        break;
      case BPF.JMP_JEQ_K:
        pc += a === k ? jt : jf;
        break;
      case BPF.JMP_JGE_K:
        pc += a >= k ? jt : jf;
        break;
      case BPF.JMP_JSET_K:
        pc += (a & k) >>> 0 !== 0 ? jt : jf;
        break;
      case BPF.RET_K:
        return k;
      default:
        assert.fail(`unexpected opcode 0x${code.toString(16)} at ${pc}`);
    }
    assert.ok(pc + 1 <= n, 'jumps stay inside the program');
  }
  assert.fail('fell off the end of the program');
}

const EPERM = SECCOMP_RET.ERRNO | 1;
const ENOSYS = SECCOMP_RET.ERRNO | 38;
const EPROTONOSUPPORT = SECCOMP_RET.ERRNO | 93;
const EAFNOSUPPORT = SECCOMP_RET.ERRNO | 97;

for (const arch of ['x64', 'arm64'] as const satisfies SeccompArch[]) {
  const nr = SYSCALLS[arch];
  const prog = buildSeccompFilter(arch);
  const call = (name: string, args: number[] = []): number => run(prog, { nr: nr[name] ?? assert.fail(name), arch: AUDIT_ARCH[arch], args });

  test(`${arch}: ordinary syscalls are allowed`, () => {
    const ordinary = arch === 'x64' ? [0, 1, 2, 3, 9, 57, 59, 60, 231, 257, 262] : [56, 57, 63, 64, 93, 94, 221, 222, 260];
    for (const n of ordinary) assert.equal(run(prog, { nr: n, arch: AUDIT_ARCH[arch] }), SECCOMP_RET.ALLOW, `nr ${n}`);
  });

  test(`${arch}: every always-denied syscall answers EPERM`, () => {
    const always = deniedSyscalls(arch).filter((d) => d.rule === 'always');
    assert.ok(always.length >= 40);
    for (const d of always) assert.equal(call(d.name), EPERM, d.name);
    for (const name of ['ptrace', 'mount', 'setns', 'bpf', 'keyctl', 'kexec_load', 'open_by_handle_at', 'fsopen', 'move_mount']) assert.equal(call(name), EPERM, name);
  });

  test(`${arch}: clone and unshare are refused only with namespace flags; clone3 answers ENOSYS`, () => {
    const SIGCHLD = 17;
    const threadFlags = 0x3d0f00; // CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID
    assert.equal(call('clone', [SIGCHLD]), SECCOMP_RET.ALLOW);
    assert.equal(call('clone', [threadFlags]), SECCOMP_RET.ALLOW);
    for (const flag of [0x80, 0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000]) {
      assert.equal(call('clone', [SIGCHLD | flag]), EPERM, `clone 0x${flag.toString(16)}`);
      assert.equal(call('unshare', [flag]), EPERM, `unshare 0x${flag.toString(16)}`);
    }
    assert.equal(call('unshare', [0x200 /* CLONE_FS */]), SECCOMP_RET.ALLOW);
    assert.equal(call('clone3', [0]), ENOSYS);
  });

  test(`${arch}: terminal injection ioctls and unsafe personalities are refused`, () => {
    assert.equal(call('ioctl', [0, 0x5412]), EPERM);
    assert.equal(call('ioctl', [0, 0x541c]), EPERM);
    assert.equal(call('ioctl', [1, 0x5401 /* TCGETS */]), SECCOMP_RET.ALLOW);
    assert.equal(call('personality', [0xffffffff]), SECCOMP_RET.ALLOW);
    assert.equal(call('personality', [0]), SECCOMP_RET.ALLOW);
    assert.equal(call('personality', [0x0400000 /* READ_IMPLIES_EXEC */]), EPERM);
  });

  test(`${arch}: socket and socketpair allow unix, inet, inet6 and netlink route only`, () => {
    const [STREAM, DGRAM, RAW] = [1, 2, 3];
    for (const name of ['socket', 'socketpair']) {
      for (const [family, type] of [[1, STREAM], [1, DGRAM], [2, STREAM], [2, DGRAM], [10, STREAM], [10, DGRAM]] as const)
        assert.equal(call(name, [family, type, 0]), SECCOMP_RET.ALLOW, `${name} family ${family}`);
      // SOCK_CLOEXEC | SOCK_NONBLOCK in the type word change nothing.
      assert.equal(call(name, [1, STREAM | 0x80000 | 0x800, 0]), SECCOMP_RET.ALLOW);
      assert.equal(call(name, [16, RAW, 0 /* NETLINK_ROUTE */]), SECCOMP_RET.ALLOW);
      for (const proto of [4 /* SOCK_DIAG */, 6 /* XFRM */, 9 /* AUDIT */, 12 /* NETFILTER */, 15 /* KOBJECT_UEVENT */, 16 /* GENERIC */])
        assert.equal(call(name, [16, RAW, proto]), EPROTONOSUPPORT, `${name} netlink ${proto}`);
      // AF_UNSPEC, AF_AX25, AF_KEY, AF_PACKET, AF_RDS, AF_LLC, AF_CAN, AF_TIPC, AF_BLUETOOTH, AF_ALG, AF_VSOCK, AF_KCM, AF_QIPCRTR, AF_SMC, AF_XDP, AF_MCTP, past AF_MAX, negative.
      for (const family of [0, 3, 15, 17, 21, 26, 29, 30, 31, 38, 40, 41, 42, 43, 44, 45, 46, 255, 0xffffffff])
        assert.equal(call(name, [family, STREAM, 0]), EAFNOSUPPORT, `${name} family ${family}`);
      // The kernel takes the family as int: only the low word counts, high bits neither hide nor spoil it.
      assert.equal(call(name, [2 ** 32 + 40, STREAM, 0]), EAFNOSUPPORT);
      assert.equal(call(name, [2 ** 32 + 1, STREAM, 0]), SECCOMP_RET.ALLOW);
      assert.equal(call(name, [16, RAW, 2 ** 32 + 12]), EPROTONOSUPPORT);
    }
    const rules = deniedSyscalls(arch).filter((d) => d.rule === 'socket-family');
    assert.deepEqual(rules.map((d) => [d.name, d.nr, d.errno]), [['socket', nr.socket, 'EAFNOSUPPORT'], ['socketpair', nr.socketpair, 'EAFNOSUPPORT']]);
  });

  test(`${arch}: a foreign architecture is killed`, () => {
    for (const foreign of [0x40000003 /* i386 */, arch === 'x64' ? AUDIT_ARCH.arm64 : AUDIT_ARCH.x64, 0])
      assert.equal(run(prog, { nr: 0, arch: foreign }), SECCOMP_RET.KILL_PROCESS);
  });
}

test('x64: x32 syscalls are refused', () => {
  const prog = buildSeccompFilter('x64');
  assert.equal(run(prog, { nr: 0x40000000 + 1, arch: AUDIT_ARCH.x64 }), EPERM);
  assert.equal(run(prog, { nr: -1, arch: AUDIT_ARCH.x64 }), EPERM);
});

test('the syscall tables agree with the installed x86_64 header', (t) => {
  const header = '/usr/include/x86_64-linux-gnu/asm/unistd_64.h';
  if (!existsSync(header)) return t.skip(`${header} is missing (apt-get install linux-libc-dev)`);
  const text = spawnSync('cat', [header], { encoding: 'utf8' }).stdout;
  for (const [name, n] of Object.entries(SYSCALLS.x64)) {
    const m = new RegExp(`#define __NR_${name}\\s+(\\d+)`).exec(text);
    if (m) assert.equal(Number(m[1]), n, name);
    else assert.ok(n >= 460, `${name} is newer than this header`);
  }
});

test('seccompFd returns a readable fd holding exactly the program, with no file left behind', () => {
  const prog = buildSeccompFilter('x64');
  const fd = seccompFd(prog);
  try {
    const st = fstatSync(fd);
    assert.equal(st.size, prog.length);
    assert.equal(st.nlink, 0);
    const back = Buffer.alloc(prog.length);
    assert.equal(readSync(fd, back, 0, back.length, 0), prog.length);
    assert.deepEqual(back, prog);
  } finally {
    closeSync(fd);
  }
});

// Integration: the filter loaded by the real bubblewrap.
const bwrap = spawnSync('bwrap', ['--version']).status === 0;
const arch = process.arch === 'x64' || process.arch === 'arm64' ? process.arch : undefined;

/** Runs argv in bwrap as uid 0 of a new user namespace, with the filter unless `filter` is false. */
function sandboxed(argv: string[], filter = true): { code: number | null; out: string } {
  const fd = seccompFd(buildSeccompFilter(arch));
  try {
    const seccomp = filter ? ['--seccomp', '3'] : [];
    const r = spawnSync('bwrap', ['--ro-bind', '/', '/', '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp', '--unshare-all', '--uid', '0', '--gid', '0', '--die-with-parent', ...seccomp, '--', ...argv], {
      stdio: ['ignore', 'pipe', 'pipe', fd],
      encoding: 'utf8',
    });
    return { code: r.status, out: r.stdout + r.stderr };
  } finally {
    closeSync(fd);
  }
}

test('bwrap with the filter: ordinary programs run, namespace and mount escapes fail with EPERM', { skip: !bwrap || !arch ? 'needs bubblewrap on x86_64 or aarch64' : false }, () => {
  const ok = sandboxed(['true']);
  assert.equal(ok.code, 0, ok.out);
  const forked = sandboxed(['sh', '-c', 'echo $(echo nested) | cat']);
  assert.equal(forked.code, 0, forked.out);
  assert.match(forked.out, /nested/);

  const userns = sandboxed(['unshare', '-U', 'true']);
  assert.notEqual(userns.code, 0);
  assert.match(userns.out, /Operation not permitted/);

  const mount = sandboxed(['mount', '-t', 'tmpfs', 'x', '/tmp']);
  assert.notEqual(mount.code, 0);
  assert.match(mount.out, /permission denied|Operation not permitted/i);
});

test('bwrap without the filter: the same escapes succeed (so the filter is what stops them)', { skip: !bwrap || !arch || process.getuid?.() !== 0 ? 'needs bubblewrap and root (bwrap keeps namespace caps for uid 0 only then)' : false }, () => {
  const r = sandboxed(['sh', '-c', 'mount -t tmpfs x /tmp && unshare -U true && echo escaped'], false);
  assert.match(r.out, /escaped/);
});

const python = ['/usr/bin/python3'].find((p) => existsSync(p));

test('bwrap with the filter: denied syscalls report EPERM, threads still start (clone3 falls back)', { skip: !bwrap || !arch || !python ? 'needs bubblewrap and /usr/bin/python3' : false }, () => {
  const names = ['ptrace', 'bpf', 'keyctl', 'perf_event_open', 'setns', 'userfaultfd', 'open_tree', 'fsopen', 'add_key'];
  const script = `
import ctypes, os, threading
libc = ctypes.CDLL(None, use_errno=True)
for name, nr in ${JSON.stringify(names.map((n) => [n, SYSCALLS[arch!][n]]))}:
    r = libc.syscall(nr, 0, 0, 0, 0, 0)
    print(name, r, os.strerror(ctypes.get_errno()))
t = threading.Thread(target=lambda: print("thread ran")); t.start(); t.join()
print("clone3", libc.syscall(${SYSCALLS[arch!].clone3}, 0, 0), os.strerror(ctypes.get_errno()))
`;
  const r = sandboxed([python!, '-c', script]);
  assert.equal(r.code, 0, r.out);
  for (const n of names) assert.match(r.out, new RegExp(`^${n} -1 Operation not permitted$`, 'm'));
  assert.match(r.out, /^thread ran$/m);
  assert.match(r.out, /^clone3 -1 Function not implemented$/m);
});

test('bwrap with the filter: only unix, inet, inet6 and netlink route sockets can be made', { skip: !bwrap || !arch || !python ? 'needs bubblewrap and /usr/bin/python3' : false }, () => {
  // family, type, protocol: AF_VSOCK (the finding: it reaches the VM host through --unshare-net),
  // AF_PACKET, AF_ALG, AF_NETLINK with NETLINK_NETFILTER, then the allowed ones.
  const script = `
import ctypes, socket
libc = ctypes.CDLL(None, use_errno=True)
def attempt(label, make):
    try:
        make().close()
        print(label, "ok")
    except OSError as e:
        print(label, e.errno)
attempt("vsock", lambda: socket.socket(40, socket.SOCK_STREAM))
attempt("packet", lambda: socket.socket(17, socket.SOCK_RAW, 0))
attempt("alg", lambda: socket.socket(38, socket.SOCK_SEQPACKET))
attempt("netfilter", lambda: socket.socket(16, socket.SOCK_RAW, 12))
attempt("inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
attempt("inet6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))
attempt("unix", lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
attempt("route", lambda: socket.socket(16, socket.SOCK_RAW, 0))
a, b = socket.socketpair(); a.send(b"pair"); print("socketpair", b.recv(4).decode())
r = libc.syscall(${SYSCALLS[arch!].socket}, ctypes.c_long((1 << 32) | 40), 1, 0)
print("vsock-high", r, ctypes.get_errno())
`;
  const r = sandboxed([python!, '-c', script]);
  assert.equal(r.code, 0, r.out);
  for (const label of ['vsock', 'packet', 'alg']) assert.match(r.out, new RegExp(`^${label} 97$`, 'm'));
  assert.match(r.out, /^netfilter 93$/m);
  for (const label of ['inet', 'inet6', 'unix', 'route']) assert.match(r.out, new RegExp(`^${label} ok$`, 'm'));
  assert.match(r.out, /^socketpair pair$/m);
  assert.match(r.out, /^vsock-high -1 97$/m);
});

test('bwrap without the filter: AF_VSOCK opens (so the filter is what stops it)', { skip: !bwrap || !arch || !python ? 'needs bubblewrap and /usr/bin/python3' : false }, (t) => {
  const r = sandboxed([python!, '-c', 'import socket\ntry:\n    socket.socket(40, socket.SOCK_STREAM); print("vsock ok")\nexcept OSError as e: print("vsock", e.errno)'], false);
  if (/^vsock 97$/m.test(r.out)) return t.skip('this kernel has no vsock transport loaded');
  assert.match(r.out, /^vsock ok$/m);
});
