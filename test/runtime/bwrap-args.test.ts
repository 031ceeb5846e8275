import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBwrapArgs, sandboxCwd, type BwrapSpec } from '../../src/runtime/bwrap-args.ts';
import { buildSeccompFilter, seccompFd } from '../../src/runtime/seccomp-filter.ts';
import { isCorralError } from '../../src/protocol/errors.ts';
import { tempDir } from '../helpers.ts';

const base: BwrapSpec = {
  workspace: '/srv/ws',
  readonly: false,
  cwd: '/workspace/src',
  argv: ['make', '-j2'],
  env: { PATH: '/usr/bin:/bin', HOME: '/workspace' },
  network: false,
  tmpSizeBytes: 64 << 20,
};

/** The (option, operands) pairs for every occurrence of `opt`. */
function operands(args: string[], opt: string, n: number): string[][] {
  const sep = args.indexOf('--');
  const out: string[][] = [];
  args.slice(0, sep).forEach((a, i) => a === opt && out.push(args.slice(i + 1, i + 1 + n)));
  return out;
}

test('the argument list ends with -- and the argv untouched', () => {
  const args = buildBwrapArgs({ ...base, argv: ['--help', '-x', '$(rm -rf /)'] });
  assert.deepEqual(args.slice(-4), ['--', '--help', '-x', '$(rm -rf /)']);
});

test('every namespace is new; the network only without network access', () => {
  const off = buildBwrapArgs(base);
  for (const o of ['--unshare-user', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try', '--unshare-net', '--disable-userns', '--die-with-parent', '--new-session'])
    assert.ok(off.includes(o), o);
  assert.deepEqual(operands(off, '--cap-drop', 1), [['ALL']]);
  assert.deepEqual(operands(off, '--hostname', 1), [['corral']]);
  const on = buildBwrapArgs({ ...base, network: true, hostname: 'box-1', newSession: false });
  assert.ok(!on.includes('--unshare-net'));
  assert.ok(!on.includes('--new-session'));
  assert.deepEqual(operands(on, '--hostname', 1), [['box-1']]);
  assert.ok(operands(on, '--ro-bind-try', 2).some(([s]) => s === '/etc/resolv.conf'));
  assert.ok(!operands(off, '--ro-bind-try', 2).some(([s]) => s === '/etc/resolv.conf' || s === '/etc/hosts'));
});

test('the environment is cleared, then exactly the given variables are set', () => {
  const args = buildBwrapArgs(base);
  const clear = args.indexOf('--clearenv');
  assert.ok(clear >= 0 && clear < args.indexOf('--setenv'));
  assert.deepEqual(operands(args, '--setenv', 2), [['PATH', '/usr/bin:/bin'], ['HOME', '/workspace']]);
});

test('only system directories and chosen /etc files are visible, never /home, /root or secrets', () => {
  const args = buildBwrapArgs({ ...base, extraReadOnly: ['/opt/tool'] });
  const binds = [...operands(args, '--ro-bind-try', 2), ...operands(args, '--ro-bind', 2), ...operands(args, '--bind', 2)];
  const sources = binds.map(([s]) => s!);
  for (const [s, d] of binds) if (d !== '/workspace') assert.equal(s, d);
  for (const bad of ['/', '/home', '/root', '/etc', '/etc/shadow', '/etc/gshadow', '/etc/ssh', '/etc/ssl', '/etc/ssl/private', '/etc/sudoers', '/run', '/var', '/proc', '/sys'])
    assert.ok(!sources.includes(bad), bad);
  for (const s of sources) assert.ok(!s.startsWith('/home') && !s.startsWith('/root') && !s.startsWith('/etc/ssh') && !s.startsWith('/etc/ssl/private'), s);
  for (const need of ['/usr', '/etc/ld.so.cache', '/etc/passwd', '/etc/ssl/certs', '/opt/tool']) assert.ok(sources.includes(need), need);
  assert.deepEqual(operands(args, '--bind', 2), [['/srv/ws', '/workspace']]);
  assert.deepEqual(operands(args, '--proc', 1), [['/proc']]);
  assert.deepEqual(operands(args, '--dev', 1), [['/dev']]);
});

test('the workspace is read-only when asked; /tmp is a sized tmpfs; the root is remounted read-only last', () => {
  const args = buildBwrapArgs({ ...base, readonly: true, tmpSizeBytes: 1 << 20, seccompFd: 7, uid: 1000, gid: 100 });
  assert.deepEqual(operands(args, '--ro-bind', 2), [['/srv/ws', '/workspace']]);
  assert.deepEqual(operands(args, '--bind', 2), []);
  const tmp = args.indexOf('/tmp', args.indexOf('--tmpfs'));
  assert.deepEqual(args.slice(tmp - 3, tmp + 1), ['--size', String(1 << 20), '--tmpfs', '/tmp']);
  const remountRoot = args.lastIndexOf('/') - 1;
  assert.equal(args[remountRoot], '--remount-ro');
  for (const o of ['--bind', '--tmpfs', '--proc', '--dev', '--ro-bind-try', '--symlink']) assert.ok(args.lastIndexOf(o) < remountRoot, o);
  assert.deepEqual(operands(args, '--seccomp', 1), [['7']]);
  assert.deepEqual(operands(args, '--uid', 1), [['1000']]);
  assert.deepEqual(operands(args, '--gid', 1), [['100']]);
  assert.deepEqual(operands(args, '--chdir', 1), [['/workspace/src']]);
});

test('hostile specs are refused', () => {
  const bad: Partial<BwrapSpec>[] = [
    { cwd: '/workspace/../etc' },
    { cwd: '/etc' },
    { cwd: 'workspace' },
    { cwd: '/workspacex' },
    { workspace: 'relative/dir' },
    { workspace: '/srv/../root' },
    { argv: [] },
    { argv: ['a\0b'] },
    { env: { 'A=B': 'x' } },
    { env: { A: 'x\0y' } },
    { env: { '': 'x' } },
    { tmpSizeBytes: -1 },
    { tmpSizeBytes: 1.5 },
    { hostname: 'a b' },
    { uid: -1 },
    { seccompFd: 1 },
    { extraReadOnly: ['/'] },
    { extraReadOnly: ['/tmp/x'] },
    { extraReadOnly: ['rel'] },
  ];
  for (const b of bad) assert.throws(() => buildBwrapArgs({ ...base, ...b }), (e) => isCorralError(e, 'INVALID_ARGUMENT'), JSON.stringify(b));
  assert.equal(sandboxCwd('/workspace/a/./b/'), '/workspace/a/b');
  assert.equal(sandboxCwd('/workspace'), '/workspace');
});

// Integration with the real bubblewrap.
const bwrap = spawnSync('bwrap', ['--version']).status === 0;
const skip = bwrap ? false : 'bubblewrap is not installed (apt-get install bubblewrap)';

function run(spec: Partial<BwrapSpec> & { workspace: string }, script: string): { code: number | null; out: string; err: string } {
  const fd = seccompFd(buildSeccompFilter());
  try {
    const args = buildBwrapArgs({ ...base, cwd: '/workspace', seccompFd: 3, ...spec, argv: ['/bin/sh', '-c', script] });
    const r = spawnSync('bwrap', args, { stdio: ['ignore', 'pipe', 'pipe', fd], encoding: 'utf8' });
    return { code: r.status, out: r.stdout, err: r.stderr };
  } finally {
    closeSync(fd);
  }
}

test('sandbox: host secrets and homes are missing', { skip }, () => {
  const ws = tempDir();
  const r = run({ workspace: ws }, 'cat /etc/shadow; ls /home; ls /root; ls /etc/ssh; ls /etc/ssl/private; echo done');
  assert.match(r.out, /^done$/m);
  for (const p of ['/etc/shadow', '/home', '/root', '/etc/ssh', '/etc/ssl/private']) assert.match(r.err, new RegExp(`${p}'?: No such file or directory`), p);
});

test('sandbox: only /workspace and /tmp are writable; the readonly flag holds', { skip }, () => {
  const ws = tempDir();
  const r = run({ workspace: ws }, 'for p in /x /usr/x /etc/x /dev/x /proc/x; do touch $p; done; echo hi > /workspace/made && echo ws-ok; echo t > /tmp/t && echo tmp-ok; id -u');
  assert.match(r.out, /^ws-ok$/m);
  assert.match(r.out, /^tmp-ok$/m);
  assert.equal(readFileSync(join(ws, 'made'), 'utf8'), 'hi\n');
  for (const p of ['/x', '/usr/x', '/etc/x', '/dev/x']) assert.match(r.err, new RegExp(`'${p}': Read-only file system`), p);
  assert.match(r.out, new RegExp(`^${process.getuid!()}$`, 'm'));

  writeFileSync(join(ws, 'keep'), 'same');
  const ro = run({ workspace: ws, readonly: true }, 'echo changed > /workspace/keep; touch /workspace/new; cat /workspace/keep');
  assert.match(ro.err, /Read-only file system/);
  assert.equal(ro.out, 'same');
  assert.ok(!existsSync(join(ws, 'new')));
});

test('sandbox: loopback only without network; hostname, uid and environment as given', { skip }, () => {
  const ws = tempDir();
  const r = run({ workspace: ws, uid: 1234, gid: 4321, env: { PATH: '/usr/bin:/bin', ONLY: 'this' } }, 'cat /proc/net/dev; hostname; id -u; id -g; env; ls /proc | grep -c "^[0-9]"');
  const ifaces = [...r.out.matchAll(/^\s*(\w+):\s+\d/gm)].map((m) => m[1]);
  assert.deepEqual(ifaces, ['lo']);
  assert.match(r.out, /^corral$/m);
  assert.match(r.out, /^1234$/m);
  assert.match(r.out, /^4321$/m);
  const env = r.out.split('\n').filter((l) => /^[A-Z_]+=/.test(l)).sort();
  assert.deepEqual(env, ['ONLY=this', 'PATH=/usr/bin:/bin', 'PWD=/workspace']);
});

test('sandbox: /tmp is bounded by its size (ENOSPC)', { skip }, () => {
  const ws = tempDir();
  const r = run({ workspace: ws, tmpSizeBytes: 1 << 20 }, 'dd if=/dev/zero of=/tmp/big bs=64k count=64; echo rc=$?');
  assert.match(r.err, /No space left on device/);
  assert.match(r.out, /rc=1/);
});
