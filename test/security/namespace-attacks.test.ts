// Real attacks run inside the namespace backend (exec issue §6), each asserted to fail for the
// right reason (ENOENT where a thing must not exist in the sandbox, EROFS, EPERM from seccomp,
// ENOSPC, the cgroup limit), most with a control showing the same action works on the host or
// with the protection off, so a test fails if its protection disappears.
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { randomBytes } from 'node:crypto';
import { join, relative } from 'node:path';
import type { Capabilities, ResourceLimits, RunResult } from '../../src/runtime/backend.ts';
import { NamespaceBackend } from '../../src/runtime/namespace-backend.ts';
import { tempDir } from '../helpers.ts';

const backend = new NamespaceBackend();
let caps: Capabilities;
const isRoot = process.getuid?.() === 0;
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : null;
const ENV = { PATH: '/usr/bin:/bin', HOME: '/workspace' };
const rand = (): string => randomBytes(6).toString('hex');

before(async () => {
  caps = await backend.probe();
});

/** Host processes a test starts, killed when the file ends even if an assertion failed. */
const hostChildren: ChildProcess[] = [];
after(() => {
  for (const c of hostChildren) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function hostSleep(): ChildProcess {
  const c = spawn('sleep', ['1000'], { stdio: 'ignore' });
  hostChildren.push(c);
  return c;
}

/** False (and the test skipped) when this machine cannot run the namespace backend or python3. */
function ready(t: TestContext, needs: { python?: boolean; cgroups?: boolean } = {}): boolean {
  if (!caps.available) {
    t.skip(`the namespace backend is unavailable here: ${caps.reason}`);
    return false;
  }
  if (needs.python && !PYTHON) {
    t.skip('python3 is not installed (apt-get install python3)');
    return false;
  }
  if (needs.cgroups && !(caps.limits.memory && caps.limits.pids)) {
    t.skip('no writable cgroups (not root?): memory and pids limits cannot be enforced here');
    return false;
  }
  return true;
}

interface Ran {
  r: RunResult;
  out: string;
  err: string;
  /** `key=value` lines the command printed. */
  kv: Map<string, string>;
}

interface RunOptions {
  checkout?: string;
  network?: boolean;
  readonly?: boolean;
  limits?: ResourceLimits;
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Inspect the result before the overlay upper directory is released. */
  inspect?: (r: RunResult) => void;
}

async function run(argv: string[], o: RunOptions = {}): Promise<Ran> {
  const checkout = o.checkout ?? tempDir('corral-sec-ws-');
  const sandbox = await backend.create({ checkout, readonly: o.readonly ?? false, network: o.network ?? false, limits: o.limits ?? {}, bestEffort: false });
  try {
    const r = await sandbox.exec({ argv, cwd: '/', env: o.env ?? ENV, timeoutMs: o.timeoutMs ?? 10_000, graceMs: 300, outputCap: 1 << 20, limits: {} });
    try {
      o.inspect?.(r);
    } finally {
      r.upper?.release();
    }
    const out = r.stdout.toString('utf8');
    const kv = new Map<string, string>();
    for (const line of out.split('\n')) {
      const eq = line.indexOf('=');
      if (eq > 0) kv.set(line.slice(0, eq), line.slice(eq + 1));
    }
    return { r, out, err: r.stderr.toString('utf8'), kv };
  } finally {
    await sandbox.destroy();
  }
}

/** Helpers every python probe starts with: `put(key, value)`, `io(fn)` and `call(ret)` give 'OK' or the errno name. */
const PRELUDE = `
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
def ename(n): return errno.errorcode.get(n, str(n))
def call(r): return 'OK' if r >= 0 else ename(ctypes.get_errno())
def io(f):
    try:
        f()
        return 'OK'
    except OSError as e:
        return ename(e.errno)
def put(k, v): print(f'{k}={v}', flush=True)
`;

function py(code: string, o: RunOptions = {}, args: string[] = []): Promise<Ran> {
  return run([PYTHON ?? 'python3', '-c', PRELUDE + code, ...args], o);
}

/** The same probe on the host, as the control. */
function pyHost(code: string, args: string[] = []): Map<string, string> {
  const r = spawnSync(PYTHON ?? 'python3', ['-c', PRELUDE + code, ...args], { encoding: 'utf8', timeout: 10_000 });
  const kv = new Map<string, string>();
  for (const line of (r.stdout ?? '').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) kv.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return kv;
}

/** A marker file planted on the host for one test, removed afterwards; null when this user cannot write there. */
function plant(t: TestContext, dir: string, content: string): string | null {
  const path = join(dir, `corral-marker-${rand()}`);
  try {
    writeFileSync(path, content, { flag: 'wx', mode: 0o644 });
  } catch {
    return null;
  }
  t.after(() => rmSync(path, { force: true }));
  return path;
}

describe('namespace backend: attacks from inside the sandbox fail', { concurrency: 3 }, () => {
  test('attack: read /etc/shadow and files under /root and /home', async (t) => {
    if (!ready(t, { python: true })) return;
    const secret = `secret-${rand()}`;
    const planted = ['/root', '/home'].map((d) => plant(t, d, secret)).filter((p): p is string => p !== null);
    if (planted.length === 0) t.diagnostic('cannot plant markers under /root or /home as this user: only /etc/shadow is tried');
    // Control: the host itself can read what the sandbox must not see.
    for (const p of planted) assert.equal(readFileSync(p, 'utf8'), secret);
    assert.ok(existsSync('/etc/shadow'), 'the host has /etc/shadow');
    const targets = ['/etc/shadow', '/etc/gshadow', '/etc/sudoers', ...planted];
    const { out, kv, r } = await py(
      `for p in sys.argv[1:]:\n    put('read:' + p, io(lambda: open(p, 'rb').read()))\nfor d in ['/root', '/home']:\n    put('list:' + d, io(lambda: os.listdir(d)))`,
      {},
      targets,
    );
    assert.equal(r.exitCode, 0, r.stderr.toString());
    // Not "permission denied": the files are simply not there.
    for (const p of targets) assert.equal(kv.get(`read:${p}`), 'ENOENT', p);
    assert.equal(kv.get('list:/root'), 'ENOENT');
    assert.equal(kv.get('list:/home'), 'ENOENT');
    assert.ok(!out.includes(secret));
  });

  test('attack: write outside /workspace (/etc, /usr, /, /var, a bound /etc file); /tmp and /dev/shm are private', async (t) => {
    if (!ready(t, { python: true })) return;
    const name = `corral-escape-${rand()}`;
    const outside = ['/etc', '/usr', '/usr/bin', '', '/var', '/bin', '/lib'].map((d) => `${d}/${name}`);
    const { kv, r } = await py(
      `for p in sys.argv[1:]:\n    put('write:' + p, io(lambda: open(p, 'w').write('pwned')))\nput('passwd', io(lambda: open('/etc/passwd', 'a').write('pwned')))\n` +
        `put('tmp', io(lambda: open('/tmp/${name}', 'w').write('mine')))\nput('shm', io(lambda: open('/dev/shm/${name}', 'w').write('mine')))\nput('ws', io(lambda: open('/workspace/${name}', 'w').write('mine')))`,
      {},
      outside,
    );
    assert.equal(r.exitCode, 0, r.stderr.toString());
    for (const p of outside) {
      assert.equal(kv.get(`write:${p}`), 'EROFS', p);
      assert.ok(!existsSync(p), `${p} must not appear on the host`);
    }
    assert.equal(kv.get('passwd'), 'EROFS');
    assert.ok(!readFileSync('/etc/passwd', 'utf8').includes('pwned'));
    // The private places work inside, and nothing reaches the host's.
    assert.equal(kv.get('tmp'), 'OK');
    assert.equal(kv.get('shm'), 'OK');
    assert.equal(kv.get('ws'), 'OK');
    assert.ok(!existsSync(`/tmp/${name}`), 'the sandbox /tmp is not the host /tmp');
    assert.ok(!existsSync(`/dev/shm/${name}`), 'the sandbox /dev/shm is not the host /dev/shm');
  });

  test('attack: write into a read-only workspace', async (t) => {
    if (!ready(t, { python: true })) return;
    const checkout = tempDir('corral-sec-ro-');
    writeFileSync(join(checkout, 'file'), 'original');
    const { kv } = await py(`put('new', io(lambda: open('/workspace/new', 'w').write('x')))\nput('old', io(lambda: open('/workspace/file', 'w').write('x')))`, { checkout, readonly: true });
    assert.equal(kv.get('new'), 'EROFS');
    assert.equal(kv.get('old'), 'EROFS');
    assert.equal(readFileSync(join(checkout, 'file'), 'utf8'), 'original');
    assert.deepEqual(readdirSync(checkout), ['file']);
  });

  test('attack: escape through symlinks planted in the workspace', async (t) => {
    if (!ready(t, { python: true })) return;
    const secret = `secret-${rand()}`;
    const hostDir = tempDir('corral-sec-host-');
    const hostFile = join(hostDir, 'secret');
    writeFileSync(hostFile, secret);
    const checkout = tempDir('corral-sec-ws-');
    const links: Record<string, string> = {
      abs: hostFile,
      rel: relative(checkout, hostFile),
      deep: '../'.repeat(16) + hostFile.slice(1),
      dir: hostDir,
      passwd: '/etc/passwd',
    };
    const rootMarker = plant(t, '/root', secret);
    if (rootMarker) links.root = rootMarker;
    for (const [name, target] of Object.entries(links)) symlinkSync(target, join(checkout, name));
    // Control: on the host every link leads to the secret.
    for (const name of ['abs', 'rel', 'deep', ...(rootMarker ? ['root'] : [])]) assert.equal(readFileSync(join(checkout, name), 'utf8'), secret, name);
    assert.equal(readFileSync(join(checkout, 'dir', 'secret'), 'utf8'), secret);
    const passwdBefore = readFileSync('/etc/passwd');

    const names = Object.keys(links).filter((n) => n !== 'passwd' && n !== 'dir');
    const { out, kv, r } = await py(
      `for n in sys.argv[1:]:\n    put('read:' + n, io(lambda: print(open('/workspace/' + n).read())))\n    put('write:' + n, io(lambda: open('/workspace/' + n, 'w').write('pwned')))\n` +
        `put('read:dir', io(lambda: print(open('/workspace/dir/secret').read())))\nput('write:dir', io(lambda: open('/workspace/dir/secret', 'w').write('pwned')))\nput('create:dir', io(lambda: open('/workspace/dir/new', 'w').write('pwned')))\n` +
        `put('write:passwd', io(lambda: open('/workspace/passwd', 'a').write('pwned')))`,
      { checkout },
      names,
    );
    assert.equal(r.exitCode, 0, r.stderr.toString());
    assert.ok(!out.includes(secret), 'no link reveals the host secret inside');
    // Links resolve inside the sandbox's own root, where the targets do not exist.
    for (const n of [...names, 'dir']) assert.equal(kv.get(`read:${n}`), 'ENOENT', n);
    for (const n of [...names, 'dir']) assert.ok(['ENOENT', 'EROFS'].includes(kv.get(`write:${n}`) ?? ''), `write:${n} gave ${kv.get(`write:${n}`)}`);
    assert.ok(['ENOENT', 'EROFS'].includes(kv.get('create:dir') ?? ''));
    // A link to a path that is visible inside meets the read-only bind.
    assert.equal(kv.get('write:passwd'), 'EROFS');
    // The host is unchanged.
    assert.equal(readFileSync(hostFile, 'utf8'), secret);
    assert.deepEqual(readdirSync(hostDir), ['secret']);
    if (rootMarker) assert.equal(readFileSync(rootMarker, 'utf8'), secret);
    assert.deepEqual(readFileSync('/etc/passwd'), passwdBefore);
  });

  test('attack: reach the host through /proc/1/root and /proc/<host pid>/mem', async (t) => {
    if (!ready(t, { python: true })) return;
    const secret = `secret-${rand()}`;
    const marker = plant(t, '/root', secret) ?? plant(t, '/tmp', secret);
    assert.ok(marker);
    const sleeper = hostSleep();
    const hostPid = sleeper.pid!;
    // Control: on the host, pid 1's root shows the marker and the sleeper's memory file exists.
    let hostView: string | null = null;
    try {
      hostView = readFileSync(`/proc/1/root${marker}`, 'utf8');
    } catch (e) {
      t.diagnostic(`no control: the host's /proc/1/root is not readable from here (${(e as Error).message})`);
    }
    if (hostView !== null) assert.equal(hostView, secret);
    assert.ok(existsSync(`/proc/${hostPid}/mem`));
    const { out, kv, r } = await py(
      `m, pid = sys.argv[1], sys.argv[2]\nput('root', io(lambda: print(open('/proc/1/root' + m).read())))\n` +
        `put('init', open('/proc/1/cmdline', 'rb').read().split(b'\\0')[0].decode())\n` +
        `put('mem', io(lambda: os.open('/proc/' + pid + '/mem', os.O_RDONLY)))\nput('status', io(lambda: open('/proc/' + pid + '/status').read()))\n` +
        `put('pids', ' '.join(sorted(p for p in os.listdir('/proc') if p.isdigit())))`,
      {},
      [marker, String(hostPid)],
    );
    assert.equal(r.exitCode, 0, r.stderr.toString());
    assert.ok(!out.includes(secret));
    assert.equal(kv.get('root'), 'ENOENT', "/proc/1/root is the sandbox's own root");
    assert.match(kv.get('init') ?? '', /bwrap$/, "pid 1 is the sandbox's own init");
    const pids = (kv.get('pids') ?? '').split(' ').map(Number);
    assert.ok(!pids.includes(hostPid), `the host pid ${hostPid} is not visible (sandbox pids: ${pids.join(',')})`);
    assert.equal(kv.get('mem'), 'ENOENT');
    assert.equal(kv.get('status'), 'ENOENT');
  });

  test('attack: ptrace (PTRACE_TRACEME, PTRACE_ATTACH) and process_vm_readv', async (t) => {
    if (!ready(t, { python: true })) return;
    const code =
      `put('traceme', call(libc.ptrace(0, 0, None, None)))\n` +
      `import subprocess\nc = subprocess.Popen(['sleep', '5'])\nput('attach', call(libc.ptrace(16, c.pid, None, None)))\n` +
      `put('vmread', call(libc.syscall(310, c.pid, None, 0, None, 0, 0)))\nc.kill()`;
    // Control: PTRACE_TRACEME needs no privilege at all; only a filter can refuse it.
    assert.equal(pyHost(`if os.fork() == 0:\n    put('traceme', call(libc.ptrace(0, 0, None, None)))\n    os._exit(0)\nos.wait()`).get('traceme'), 'OK');
    const { kv, r } = await py(code);
    assert.equal(r.exitCode, 0, r.stderr.toString());
    assert.equal(kv.get('traceme'), 'EPERM');
    assert.equal(kv.get('attach'), 'EPERM');
    assert.equal(kv.get('vmread'), 'EPERM');
  });

  test('attack: forge the exit status through the passive supervisor\'s status fd (pidfd_getfd, /proc/PPID/fd)', async (t) => {
    if (!ready(t, { python: true })) return;
    // The command's parent inside the sandbox is the passive supervisor, which reports on fd 5.
    const code =
      `ppid = os.getppid()\n` +
      `pidfd = libc.syscall(434, ppid, 0)\nput('pidfd_open', call(pidfd))\n` +
      `put('getfd', call(libc.syscall(438, pidfd, 5, 0)) if pidfd >= 0 else 'skipped')\n` +
      `put('procfd', io(lambda: os.open(f'/proc/{ppid}/fd/5', os.O_WRONLY)))\n` +
      `os.kill(os.getpid(), 9)`;
    const { kv, r } = await py(code);
    assert.equal(kv.get('getfd'), kv.get('pidfd_open') === 'OK' ? 'EPERM' : 'skipped', 'pidfd_getfd is refused by seccomp');
    assert.notEqual(kv.get('procfd'), 'OK', 'the supervisor is not dumpable: its fds are out of reach');
    assert.equal(r.signal, 'SIGKILL', 'the command died by SIGKILL and the result says so');
    assert.equal(r.exitCode, null);
  });

  test('attack: mount and unmount', async (t) => {
    if (!ready(t, { python: true })) return;
    const code = `put('mount', call(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)))\nput('umount', call(libc.umount2(b'/workspace', 2)))\nput('bind', call(libc.mount(b'/workspace', b'/tmp', None, 4096, None)))`;
    // Control: in a plain user + mount namespace (no seccomp) the same mount works.
    const unshare = spawnSync('unshare', ['-Urm', PYTHON!, '-c', PRELUDE + code], { encoding: 'utf8' });
    if (unshare.status === 0) assert.match(unshare.stdout, /^mount=OK$/m);
    else t.diagnostic(`no control: unshare -Urm failed here (${unshare.stderr.trim()})`);
    const { kv, r } = await py(code);
    assert.equal(r.exitCode, 0, r.stderr.toString());
    assert.equal(kv.get('mount'), 'EPERM');
    assert.equal(kv.get('umount'), 'EPERM');
    assert.equal(kv.get('bind'), 'EPERM');
  });

  test('attack: create a user namespace (unshare -U, unshare(2), clone(2) with CLONE_NEWUSER)', async (t) => {
    if (!ready(t, { python: true })) return;
    // Control: the host allows unprivileged user namespaces, so only the sandbox refuses them.
    const host = spawnSync('unshare', ['-U', 'true']);
    if (host.error || host.status !== 0) t.diagnostic('no control: unshare -U fails on the host too');
    const tool = await run(['sh', '-c', 'unshare -U true; echo "rc=$?"; unshare -Urm true; echo "rc2=$?"']);
    assert.notEqual(tool.kv.get('rc'), '0');
    assert.notEqual(tool.kv.get('rc2'), '0');
    assert.match(tool.err, /Operation not permitted/);
    const { kv } = await py(
      `put('unshare', call(libc.unshare(0x10000000)))\nput('unshare_ns', call(libc.unshare(0x00020000)))\n` +
        `put('clone', call(libc.syscall(56, 0x10000000 | 17, None, None, None, None)))`,
    );
    assert.equal(kv.get('unshare'), 'EPERM');
    assert.equal(kv.get('unshare_ns'), 'EPERM');
    assert.equal(kv.get('clone'), 'EPERM');
  });

  test('attack: load a kernel module (init_module, finit_module)', async (t) => {
    if (!ready(t, { python: true })) return;
    const code = `put('init', call(libc.syscall(175, b'', 0, b'')))\nfd = os.open('/dev/null', os.O_RDONLY)\nput('finit', call(libc.syscall(313, fd, b'', 0)))`;
    const host = pyHost(code);
    // Control: as root the host kernel answers for itself (ENOSYS without module support, EINVAL/ENOEXEC on a bad image).
    if (isRoot) assert.notEqual(host.get('finit'), 'EPERM');
    const { kv } = await py(code);
    assert.equal(kv.get('init'), 'EPERM');
    assert.equal(kv.get('finit'), 'EPERM');
  });

  test('attack: change host kernel settings through /proc/sys (core_pattern, modprobe)', async (t) => {
    if (!ready(t, { python: true })) return;
    const before = readFileSync('/proc/sys/kernel/core_pattern', 'utf8');
    // Writing back the value read keeps the host unchanged even if the write went through.
    const { kv } = await py(
      `for p in ['/proc/sys/kernel/core_pattern', '/proc/sys/kernel/modprobe', '/proc/sys/vm/drop_caches', '/proc/sys/kernel/hostname']:\n` +
        `    if os.path.exists(p):\n        v = open(p).read() if p != '/proc/sys/vm/drop_caches' else '0'\n        put(p, io(lambda: open(p, 'w').write(v)))`,
    );
    for (const p of ['/proc/sys/kernel/core_pattern', '/proc/sys/kernel/modprobe', '/proc/sys/kernel/hostname'])
      if (existsSync(p)) assert.equal(kv.get(p), 'EROFS', p);
    if (existsSync('/proc/sys/vm/drop_caches')) assert.ok(['EROFS', 'EINVAL'].includes(kv.get('/proc/sys/vm/drop_caches') ?? ''));
    assert.equal(readFileSync('/proc/sys/kernel/core_pattern', 'utf8'), before);
  });

  test('attack: kill a process outside the sandbox', async (t) => {
    if (!ready(t, { python: true })) return;
    const sleeper = hostSleep();
    const pid = sleeper.pid!;
    const { kv, err } = await py(`put('kill', io(lambda: os.kill(int(sys.argv[1]), 9)))\nimport subprocess\nput('tool', subprocess.run(['kill', '-9', sys.argv[1]]).returncode)`, {}, [String(pid)]);
    assert.equal(kv.get('kill'), 'ESRCH', 'the host process does not exist in the sandbox');
    assert.notEqual(kv.get('tool'), '0');
    assert.match(err, /No such process/);
    // It is still alive on the host.
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(sleeper.exitCode, null);
    assert.equal(sleeper.signalCode, null);
    process.kill(pid, 0);
  });

  test("attack: connect to a TCP port on the host's loopback", async (t) => {
    if (!ready(t, { python: true })) return;
    const greeting = `hello-${rand()}`;
    const server: Server = createServer((s) => s.end(greeting));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as { port: number }).port;
    const code =
      `import socket\ntry:\n    s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=3)\n    put('got', s.recv(100).decode())\n    put('connect', 'OK')\n` +
      `except OSError as e:\n    put('connect', ename(e.errno) if e.errno else type(e).__name__)`;
    const isolated = await py(code, { network: false }, [String(port)]);
    assert.equal(isolated.kv.get('connect'), 'ECONNREFUSED', 'the sandbox loopback is its own: nothing listens there');
    assert.ok(!isolated.out.includes(greeting));
    // Control: with the network allowed the same connection reaches the host server.
    const open = await py(code, { network: true }, [String(port)]);
    assert.equal(open.kv.get('connect'), 'OK');
    assert.equal(open.kv.get('got'), greeting);
  });

  test('attack: fork until it fails: the process count stays at the pids limit', async (t) => {
    if (!ready(t, { python: true, cgroups: true })) return;
    const code =
      `import time\nn, err = 0, 'none'\nwhile n < 400:\n    try:\n        pid = os.fork()\n    except OSError as e:\n        err = ename(e.errno)\n        break\n` +
      `    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n    n += 1\nput('forked', n)\nput('err', err)`;
    const small = await py(code, { limits: { pids: 24 } });
    const large = await py(code, { limits: { pids: 64 } });
    assert.equal(small.kv.get('err'), 'EAGAIN');
    assert.equal(large.kv.get('err'), 'EAGAIN');
    const a = Number(small.kv.get('forked'));
    const b = Number(large.kv.get('forked'));
    assert.ok(a > 0 && a < 24, `forked ${a} under pids=24`);
    assert.ok(b >= 24 && b < 64, `forked ${b} under pids=64: the limit, not something else, stopped it`);
  });

  test('attack: a fork bomb is contained, the host keeps ticking and nothing is left behind', async (t) => {
    if (!ready(t, { cgroups: true })) return;
    const marker = `corral-bomb-${rand()}`;
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    t.after(() => clearInterval(timer));
    // The parent spins in a builtin loop (no fork to fail), so the exec ends by its timeout.
    const { r } = await run(['bash', '-c', 'b() { b | b & }; b; while :; do :; done', marker], { limits: { pids: 64 }, timeoutMs: 2_000 });
    clearInterval(timer);
    assert.equal(r.timedOut, true, 'the exec ended by its timeout');
    assert.notEqual(r.signal, null);
    assert.ok(ticks >= 10, `the host event loop kept running (${ticks} ticks in ${Math.round(r.durationMs)} ms)`);
    const left: number[] = [];
    for (const p of readdirSync('/proc')) {
      if (!/^\d+$/.test(p)) continue;
      try {
        if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(marker)) left.push(Number(p));
      } catch {
        // gone meanwhile
      }
    }
    assert.deepEqual(left, [], 'no process of the bomb is left');
  });

  test('attack: a memory hog is killed by the memory limit', async (t) => {
    if (!ready(t, { python: true, cgroups: true })) return;
    const limits = { memoryBytes: 64 << 20 };
    // Control: a modest allocation under the same limit works, so it is the size that is refused.
    const fine = await py(`b = b'\\x01' * (16 << 20)\nput('ok', len(b))`, { limits });
    assert.equal(fine.r.exitCode, 0, fine.err);
    assert.equal(fine.r.oomKilled, false);
    const hog = await py(`b = b'\\x01' * (512 << 20)\nput('ok', len(b))`, { limits });
    assert.equal(hog.r.oomKilled, true);
    assert.notEqual(hog.r.exitCode, 0);
    assert.equal(hog.kv.get('ok'), undefined);
  });

  test('attack: fill /tmp and /dev/shm: bounded by the tmpfs size (ENOSPC)', async (t) => {
    if (!ready(t, { python: true })) return;
    const code =
      `for d in ['/tmp', '/dev/shm']:\n    total, err = 0, 'none'\n    try:\n        with open(d + '/fill', 'wb') as f:\n            while total < (64 << 20):\n` +
      `                f.write(b'x' * 65536)\n                f.flush()\n                total += 65536\n    except OSError as e:\n        err = ename(e.errno)\n    put(d + ':err', err)\n    put(d + ':bytes', total)`;
    const { kv } = await py(code, { limits: { tmpSizeBytes: 1 << 20 } });
    for (const d of ['/tmp', '/dev/shm']) {
      assert.equal(kv.get(`${d}:err`), 'ENOSPC', d);
      const n = Number(kv.get(`${d}:bytes`));
      assert.ok(n >= 512 << 10 && n <= 1 << 20, `${d}: wrote ${n} bytes before ENOSPC`);
    }
  });

  test('attack: setuid binaries cannot raise privileges; no_new_privs is set', async (t) => {
    if (!ready(t)) return;
    const uid = process.getuid!();
    const checkout = tempDir('corral-sec-ws-');
    let suidOwner: number | null = null;
    if (isRoot) {
      // A setuid copy of id owned by nobody: on the host it runs as nobody (the control).
      copyFileSync('/usr/bin/id', join(checkout, 'id-suid'));
      chownSync(join(checkout, 'id-suid'), 65534, 65534);
      chmodSync(join(checkout, 'id-suid'), 0o4755);
      const host = spawnSync(join(checkout, 'id-suid'), ['-u'], { encoding: 'utf8' });
      if (host.status === 0 && host.stdout.trim() === '65534') suidOwner = 65534;
      else t.diagnostic(`no control: the setuid copy did not change the uid on the host (${host.stdout.trim()})`);
    }
    const script =
      'grep NoNewPrivs /proc/self/status; echo "uid=$(id -u)"; [ -x ./id-suid ] && echo "suid=$(./id-suid -u)"; ' +
      'su -c "id -u" root </dev/null >/dev/null 2>&1; echo "su=$?"; echo "after=$(id -u)"';
    const { out, kv } = await run(['sh', '-c', script], { checkout });
    assert.match(out, /^NoNewPrivs:\s*1$/m);
    assert.equal(kv.get('uid'), String(uid));
    if (suidOwner !== null) assert.equal(kv.get('suid'), String(uid), 'the setuid bit was ignored inside');
    assert.notEqual(kv.get('su'), '0', 'su cannot authenticate or switch users');
    assert.equal(kv.get('after'), String(uid));
  });

  test("attack: read the host's environment secrets", async (t) => {
    if (!ready(t, { python: true })) return;
    const secret = `secret-${rand()}`;
    process.env.CORRAL_TEST_SECRET = secret;
    t.after(() => delete process.env.CORRAL_TEST_SECRET);
    const env = { PATH: '/usr/bin:/bin', HOME: '/workspace', ONLY: 'this' };
    // /proc/self/environ is what the process received (python's own locale coercion comes later).
    const { out, kv } = await py(`import json\nfor k, p in [('self', '/proc/self/environ'), ('init', '/proc/1/environ')]:\n    put(k, json.dumps(sorted(open(p).read().split('\\0')[:-1])))`, { env });
    assert.ok(!out.includes(secret));
    const given = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    // bwrap adds PWD for its --chdir; nothing else.
    assert.deepEqual(JSON.parse(kv.get('self') ?? 'null'), [...given, 'PWD=/workspace'].sort(), 'the command env is what was passed');
    assert.deepEqual(JSON.parse(kv.get('init') ?? 'null'), given.sort(), "the sandbox init's env is what was passed");
  });

  test('the sandbox: seccomp filter on, no capabilities, hostname corral, loopback only', async (t) => {
    if (!ready(t)) return;
    const { out, r } = await run(['sh', '-c', 'cat /proc/self/status; echo "host=$(hostname)"; echo "net=$(tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " " | tr "\\n" " ")"']);
    assert.equal(r.exitCode, 0, r.stderr.toString());
    assert.match(out, /^Seccomp:\s*2$/m);
    for (const c of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) assert.match(out, new RegExp(`^${c}:\\s*0000000000000000$`, 'm'), c);
    assert.match(out, /^host=corral$/m);
    assert.match(out, /^net=lo $/m, 'only the loopback interface');
  });

  test('attack: use a descriptor Corral inherited from its parent', async (t) => {
    if (!ready(t, { python: true })) return;
    // Node marks low inherited fds close-on-exec at start-up but not high ones: fd 100 as a shell
    // redirect (`100<>file`) or a harness would leave it.
    const secret = `secret-${rand()}`;
    const hostDir = tempDir('corral-sec-host-');
    const hostFile = join(hostDir, 'secret');
    writeFileSync(hostFile, secret);
    const checkout = tempDir('corral-sec-ws-');
    const fixture = join(import.meta.dirname, 'inherited-fd-fixture.ts');
    const code = `put('read', io(lambda: print(os.pread(100, 100, 0))))\nput('write', io(lambda: os.pwrite(100, b'PWNED', 0)))`;
    const r = spawnSync('bash', ['-c', 'exec "$0" --disable-warning=ExperimentalWarning "$@" 100<>"$HOST_FILE"', process.execPath, fixture, checkout, PRELUDE + code], {
      encoding: 'utf8',
      env: { ...process.env, HOST_FILE: hostFile },
      timeout: 20_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout) as { stdout: string };
    assert.ok(!res.stdout.includes(secret), 'the host file was read through the inherited descriptor');
    assert.match(res.stdout, /^read=EBADF$/m);
    assert.equal(readFileSync(hostFile, 'utf8'), secret, 'the host file was changed through the inherited descriptor');
  });
});

