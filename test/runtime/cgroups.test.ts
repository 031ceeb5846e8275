import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CgroupSet, cgroupSupport, cleanupStaleCgroups, detectCgroups, layoutFrom, pidAlive, type CgroupLayout } from '../../src/runtime/cgroups.ts';
import { isCorralError } from '../../src/protocol/errors.ts';

// This machine's kind: v1 controllers, a v2 tree without controllers.
const HYBRID_MOUNTINFO = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw`;
const HYBRID_CGROUP = `9:name=systemd:/
8:pids:/
6:freezer:/
4:memory:/process_api/abc
2:cpuacct:/
1:cpu:/
0::/`;

test('layout: hybrid v1 + empty v2, own groups from /proc/self/cgroup', () => {
  const l = layoutFrom(HYBRID_MOUNTINFO, HYBRID_CGROUP, () => true, (p) => (p.endsWith('cgroup.controllers') ? 'hugetlb\n' : null));
  assert.deepEqual(l.controllers.memory, { version: 1, mount: '/sys/fs/cgroup/memory', path: '/sys/fs/cgroup/memory/process_api/abc', writable: true });
  assert.equal(l.controllers.pids?.path, '/sys/fs/cgroup/pids');
  assert.equal(l.controllers.cpuacct?.path, '/sys/fs/cgroup/cpuacct');
  assert.equal(l.controllers.freezer?.version, 1);
  assert.deepEqual(l.unified, { mount: '/sys/fs/cgroup/unified', path: '/sys/fs/cgroup/unified', writable: true, controllers: ['hugetlb'] });
  assert.deepEqual(cgroupSupport(l, { memoryBytes: 1 << 30, pids: 10, cpuShares: 512 }), { ok: true, missing: [] });
});

test('layout: pure v2 with controllers, a co-mounted cpu,cpuacct, and nothing writable', () => {
  const v2 = layoutFrom(
    '30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate',
    '0::/system.slice/corral.service',
    (d) => d.startsWith('/sys/fs/cgroup/system.slice'),
    () => 'cpuset cpu io memory pids\n',
  );
  assert.deepEqual(v2.controllers.memory, { version: 2, mount: '/sys/fs/cgroup', path: '/sys/fs/cgroup/system.slice/corral.service', writable: true });
  assert.equal(v2.controllers.cpu?.version, 2);
  assert.equal(v2.controllers.freezer, undefined);
  const co = layoutFrom('32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct', '1:cpu,cpuacct:/x', () => false);
  assert.equal(co.controllers.cpu?.path, '/sys/fs/cgroup/cpu,cpuacct/x');
  assert.equal(co.controllers.cpuacct?.path, '/sys/fs/cgroup/cpu,cpuacct/x');
  assert.deepEqual(cgroupSupport(co, { memoryBytes: 1 << 30, pids: 5, cpuQuotaPercent: 50 }), { ok: false, missing: ['memory', 'pids', 'cpu'] });
  assert.ok(co.notes.some((n) => /cpu controller .* not writable/.test(n)));
  assert.ok(co.notes.some((n) => /no cgroup v2/.test(n)));
});

test('create refuses unenforceable limits and bad names before touching anything', () => {
  const none: CgroupLayout = { controllers: {}, unified: null, notes: ['none'] };
  assert.throws(() => CgroupSet.create(none, 'x1', { memoryBytes: 64 << 20 }), (e) => isCorralError(e, 'LIMIT_UNENFORCEABLE') && (e.details.missing as string[])[0] === 'memory');
  assert.throws(() => CgroupSet.create(none, '../escape', {}), (e) => isCorralError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => CgroupSet.create(none, 'ok', { pids: 0 }), (e) => isCorralError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => CgroupSet.create(none, 'ok', { memoryBytes: 100 }), (e) => isCorralError(e, 'INVALID_ARGUMENT'));
});

// Integration: real groups (root on this machine kind).
const layout = detectCgroups();
const writable = ['memory', 'pids', 'cpuacct'].every((c) => layout.controllers[c as 'memory']?.writable);
const skip = process.getuid?.() !== 0 || !writable ? 'needs root and writable memory/pids/cpuacct cgroups (see `corral doctor`)' : false;
let seq = 0;
const unique = (): string => `t${Date.now().toString(36)}${seq++}`;

/** Starts `script` in bash after the shell joins every group of `set`. */
function runIn(set: CgroupSet, script: string): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const child = spawn('/bin/sh', ['-c', 'for f in $CG; do echo $$ > "$f" || exit 99; done; exec /bin/bash -c "$1"', 'sh', script], {
    env: { CG: set.procsFiles.join(' '), PATH: '/usr/bin:/bin' },
    stdio: 'ignore',
  });
  return new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
}

test('a fork bomb is contained by pids and killAll empties the group', { skip }, async () => {
  const set = CgroupSet.create(layout, unique(), { pids: 20 });
  try {
    assert.equal(readFileSync(join(layout.controllers.pids!.path, 'corral', `${process.pid}-${set.name}`, 'pids.max'), 'utf8').trim(), '20');
    const done = runIn(set, ':(){ :|:& };:; sleep 5');
    let peak = 0;
    for (let i = 0; i < 30; i++) {
      await new Promise((r) => setTimeout(r, 10));
      peak = Math.max(peak, set.pids().length);
    }
    assert.ok(peak > 1 && peak <= 20, `peak ${peak}`);
    set.killAll();
    assert.deepEqual(set.pids(), []);
    await done;
  } finally {
    set.destroy();
  }
  set.destroy();
  for (const f of set.procsFiles) assert.ok(!existsSync(f), f);
});

test('destroy removes an empty group at once, and kills what still runs in a busy one first', { skip }, async () => {
  const empty = CgroupSet.create(layout, unique(), { memoryBytes: 64 << 20, pids: 10 });
  assert.ok(empty.procsFiles.every((f) => existsSync(f)));
  empty.destroy();
  assert.ok(empty.procsFiles.every((f) => !existsSync(f)));

  const busy = CgroupSet.create(layout, unique(), { memoryBytes: 64 << 20, pids: 10 });
  const done = runIn(busy, 'sleep 30 & sleep 30');
  for (let i = 0; i < 400 && busy.pids().length < 2; i++) await new Promise((r) => setTimeout(r, 5));
  const members = busy.pids();
  assert.ok(members.length >= 2, String(members));
  busy.destroy();
  assert.ok(busy.procsFiles.every((f) => !existsSync(f)));
  assert.equal((await done).signal, 'SIGKILL');
  for (const p of members) assert.equal(pidAlive(p), false, `pid ${p} still runs`);
  busy.destroy(); // a second call is harmless
});

test('createAsync and destroyAsync, alone and beside other sets, make and remove the same groups and kill what is left', { skip }, async () => {
  // The first set is made alone (plain calls), the next ones beside it (off the event loop).
  const first = await CgroupSet.createAsync(layout, unique(), { pids: 5 });
  try {
    const set = await CgroupSet.createAsync(layout, unique(), { memoryBytes: 64 << 20, pids: 10 });
    assert.ok(set.procsFiles.length >= 2 && set.procsFiles.every((f) => existsSync(f)));
    assert.equal(readFileSync(join(layout.controllers.pids!.path, 'corral', `${process.pid}-${set.name}`, 'pids.max'), 'utf8').trim(), '10');
    const done = runIn(set, 'sleep 30');
    for (let i = 0; i < 400 && set.pids().length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(set.pids().length > 0);
    await set.destroyAsync();
    assert.ok(set.procsFiles.every((f) => !existsSync(f)));
    assert.equal((await done).signal, 'SIGKILL');
    await set.destroyAsync();
    // A name in use is refused, and nothing of the refused set is left behind.
    await assert.rejects(CgroupSet.createAsync(layout, first.name, { pids: 5 }), (e) => isCorralError(e, 'CONFLICT'));
    assert.ok(first.procsFiles.every((f) => existsSync(f)));
  } finally {
    await first.destroyAsync();
  }
  assert.ok(first.procsFiles.every((f) => !existsSync(f)));
  // Alone again: a busy set is killed and removed too.
  const last = await CgroupSet.createAsync(layout, unique(), { pids: 10 });
  const done = runIn(last, 'sleep 30');
  for (let i = 0; i < 400 && last.pids().length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  await last.destroyAsync();
  assert.ok(last.procsFiles.every((f) => !existsSync(f)));
  assert.equal((await done).signal, 'SIGKILL');
});

test('a memory hog is OOM-killed inside its limit and usage says so', { skip: skip || (!existsSync('/usr/bin/python3') && 'needs /usr/bin/python3') }, async () => {
  const set = CgroupSet.create(layout, unique(), { memoryBytes: 64 << 20 });
  try {
    const r = await runIn(set, `/usr/bin/python3 -c "x = b'x' * (512 << 20)"`);
    assert.ok(r.signal === 'SIGKILL' || r.code === 137, JSON.stringify(r));
    const u = set.usage();
    assert.equal(u.oomKilled, true);
    assert.ok(u.peakMemoryBytes !== null && u.peakMemoryBytes <= 64 << 20, String(u.peakMemoryBytes));
    assert.equal(typeof u.memoryFailures, 'number');
  } finally {
    set.destroy();
  }
});

test('cpu time is accounted; cpu limits are written', { skip }, async () => {
  const cpu = layout.controllers.cpu?.writable;
  const set = CgroupSet.create(layout, unique(), { ...(cpu ? { cpuShares: 512, cpuQuotaPercent: 150 } : {}), memoryBytes: 256 << 20 });
  try {
    if (cpu) {
      const dir = join(layout.controllers.cpu!.path, 'corral', `${process.pid}-${set.name}`);
      assert.equal(readFileSync(join(dir, 'cpu.shares'), 'utf8').trim(), '512');
      assert.equal(readFileSync(join(dir, 'cpu.cfs_quota_us'), 'utf8').trim(), '150000');
    }
    const r = await runIn(set, 'i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done');
    assert.equal(r.code, 0);
    const u = set.usage();
    assert.ok(u.cpuUserMs !== null && u.cpuUserMs + (u.cpuSystemMs ?? 0) > 0, JSON.stringify(u));
    assert.equal(u.oomKilled, false);
    assert.ok(u.peakMemoryBytes !== null && u.peakMemoryBytes > 0);
  } finally {
    set.destroy();
  }
});

test('stale groups of a dead owner are killed and removed; live owners are kept', { skip }, async () => {
  const deadOwner = 999_999_999;
  const stale = CgroupSet.create(layout, unique(), { pids: 5 }, deadOwner);
  const live = CgroupSet.create(layout, unique(), {});
  try {
    const done = runIn(stale, 'sleep 30');
    for (let i = 0; i < 400 && stale.pids().length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(stale.pids().length > 0);
    assert.equal(pidAlive(deadOwner), false);
    assert.equal(pidAlive(process.pid), true);
    // Another test process's exec may run the same cleanup at the same time: what matters is that the group is gone.
    cleanupStaleCgroups(layout, (pid) => pid !== deadOwner && pidAlive(pid));
    assert.ok(stale.procsFiles.every((f) => !existsSync(f)));
    assert.ok(live.procsFiles.every((f) => existsSync(f)));
    const r = await done;
    assert.equal(r.signal, 'SIGKILL');
  } finally {
    live.destroy();
  }
});
