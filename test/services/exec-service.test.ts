// The whole exec pipeline against real vaults, real processes and real bubblewrap.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pidAlive } from '../../src/runtime/cgroups.ts';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execExitCode } from '../../src/protocol/exec-result.ts';
import { workspaceCwd } from '../../src/services/exec-service.ts';
import { cleanupStaleScratch } from '../../src/runtime/supervised-sandbox.ts';
import { isCorralError } from '../../src/protocol/errors.ts';
import { walkTree } from '../../src/store/tree-diff.ts';
import { openCorral, tempDir } from '../helpers.ts';

const backends = ['namespace', 'host'] as const;
const text = (s: string) => new TextEncoder().encode(s);

function setup() {
  const corral = openCorral();
  corral.vaults.create('v');
  corral.files.write('v', '/keep.txt', text('keep\n'));
  corral.files.write('v', '/edit.txt', text('old\n'));
  corral.files.write('v', '/gone.txt', text('bye\n'));
  corral.files.write('v', '/src/main.c', text('int main(){}\n'));
  return corral;
}

for (const backend of backends) {
  test(`${backend}: a command's changes become one commit with an exact summary`, async () => {
    const corral = setup();
    const before = corral.store.getVault('v').head;
    const r = await corral.exec.run({ vault: 'v', backend, policy: 'permissive', shell: 'echo new > add.txt && echo changed > edit.txt && rm gone.txt && mkdir -p d && printf 12345 > d/five' });
    assert.equal(r.kind, 'corral.exec.result');
    assert.equal(r.version, 1);
    assert.equal(r.status, 'completed', JSON.stringify(r.error));
    assert.equal(r.backend, backend);
    assert.equal(r.exitCode, 0);
    assert.deepEqual(r.changes?.added.map((c) => [c.path, c.size]), [['/add.txt', 4], ['/d/five', 5]]);
    assert.deepEqual(r.changes?.modified.map((c) => [c.path, c.size]), [['/edit.txt', 8]]);
    assert.deepEqual(r.changes?.deleted.map((c) => [c.path, c.size]), [['/gone.txt', 4]]);
    const head = corral.store.getVault('v').head;
    assert.equal(r.changes?.commit, head);
    assert.equal(corral.store.getCommit(head).parent, before, 'exactly one commit');
    assert.equal(corral.store.getCommit(head).origin, 'exec');
    assert.equal(Buffer.from(corral.files.reader('v').readFile('/edit.txt')).toString(), 'changed\n');
    // The audit log links the exec to its commit.
    const audit = corral.store.audit.list({ vault: 'v' }).filter((a) => a.op === 'exec');
    assert.equal(audit.at(-1)?.details.commit, head);
    assert.equal(audit.at(-1)?.details.exec, r.id);
    for (const stage of ['validating', 'resolving', 'policy', 'baseline', 'mounting', 'executing', 'summarizing']) assert.ok(typeof r.stages[stage as keyof typeof r.stages] === 'number', stage);
    // A second exec sees the first one's result (the warm checkout follows the head).
    const again = await corral.exec.run({ vault: 'v', backend, policy: 'permissive', argv: ['cat', 'add.txt', 'd/five'] });
    assert.equal(again.stdout, 'new\n12345');
    assert.equal(again.changes?.commit, null);
  });

  test(`${backend}: the warm checkout follows changes made outside execs`, async () => {
    const corral = setup();
    await corral.exec.run({ vault: 'v', backend, policy: 'permissive', argv: ['true'] });
    corral.files.write('v', '/keep.txt', text('edited by the API\n'));
    corral.files.rm('v', '/gone.txt');
    const r = await corral.exec.run({ vault: 'v', backend, policy: 'permissive', shell: 'cat keep.txt; ls' });
    assert.equal(r.stdout, 'edited by the API\nedit.txt\nkeep.txt\nsrc\n');
  });

  test(`${backend}: a read-only exec discards its writes`, async () => {
    const corral = setup();
    const head = corral.store.getVault('v').head;
    const r = await corral.exec.run({ vault: 'v', backend, policy: 'permissive', readonly: true, shell: 'echo x > keep.txt; echo y > new.txt; true' });
    assert.equal(r.status, 'completed');
    assert.equal(corral.store.getVault('v').head, head);
    assert.equal(r.changes?.commit, null);
    if (backend === 'host') assert.equal(r.changes?.discarded, 'readonly');
    else assert.match(r.stderr, /Read-only file system/);
    const after = await corral.exec.run({ vault: 'v', backend, policy: 'permissive', shell: 'cat keep.txt; ls new.txt 2>&1 || true' });
    assert.match(after.stdout, /^keep\n/);
    assert.match(after.stdout, /No such file/);
  });

  test(`${backend}: a failed command keeps its changes by default, discards them when asked`, async () => {
    const corral = setup();
    const kept = await corral.exec.run({ vault: 'v', backend, policy: 'permissive', shell: 'echo partial > p.txt; exit 3' });
    assert.equal(kept.exitCode, 3);
    assert.equal(execExitCode(kept), 3);
    assert.deepEqual(kept.changes?.added.map((c) => c.path), ['/p.txt']);
    const head = corral.store.getVault('v').head;
    const dropped = await corral.exec.run({ vault: 'v', backend, policy: 'permissive', onFailure: 'discard', shell: 'echo partial > q.txt; rm keep.txt; exit 4' });
    assert.equal(dropped.changes?.discarded, 'failed');
    assert.equal(corral.store.getVault('v').head, head, 'the vault is not touched');
    const check = await corral.exec.run({ vault: 'v', backend, policy: 'permissive', shell: 'ls' });
    assert.equal(check.stdout, 'edit.txt\ngone.txt\nkeep.txt\np.txt\nsrc\n', 'the checkout is back where it was');
  });

  test(`${backend}: timeout kills the whole tree, keeps the output so far, exits 124`, async () => {
    const corral = setup();
    const pidFile = join(tempDir(), 'pid');
    // A grandchild that ignores SIGTERM and detaches into its own session.
    const script = backend === 'host' ? `trap '' TERM; setsid sh -c 'trap "" TERM; echo $$ > ${pidFile}; exec sleep 1000' & echo before; sleep 1000` : `trap '' TERM; setsid sh -c 'trap "" TERM; exec sleep 1000' & echo before; sleep 1000`;
    const r = await corral.exec.run({ vault: 'v', backend, policy: 'permissive', timeoutMs: 700, graceMs: 200, shell: script });
    assert.equal(r.status, 'completed');
    assert.equal(r.timedOut, true);
    assert.equal(r.stdout, 'before\n');
    assert.ok(r.signal === 'SIGKILL' || r.signal === 'SIGTERM', String(r.signal));
    assert.equal(execExitCode(r), 124);
    if (backend === 'host') assert.equal(pidAlive(Number(readFileSync(pidFile, 'utf8'))), false, 'the detached grandchild is gone');
  });

  test(`${backend}: the environment is clean: host secrets are not visible, --env adds, PATH/HOME/LANG set`, async () => {
    const corral = setup();
    process.env.CORRAL_TEST_SECRET = 'hunter2';
    try {
      const r = await corral.exec.run({ vault: 'v', backend, policy: 'permissive', env: { GREETING: 'hello' }, argv: ['env'] });
      assert.doesNotMatch(r.stdout, /hunter2|CORRAL_TEST_SECRET/);
      assert.match(r.stdout, /^GREETING=hello$/m);
      assert.match(r.stdout, /^PATH=/m);
      assert.match(r.stdout, /^LANG=C.UTF-8$/m);
      assert.match(r.stdout, backend === 'namespace' ? /^HOME=\/workspace$/m : /^HOME=\//m);
    } finally {
      delete process.env.CORRAL_TEST_SECRET;
    }
  });

  test(`${backend}: stdin as bytes, cwd relative or under /workspace`, async () => {
    const corral = setup();
    const r = await corral.exec.run({ vault: 'v', backend, policy: 'permissive', stdin: Buffer.from('piped'), argv: ['cat'] });
    assert.equal(r.stdout, 'piped');
    const a = await corral.exec.run({ vault: 'v', backend, policy: 'permissive', cwd: 'src', argv: ['ls'] });
    assert.equal(a.stdout, 'main.c\n');
    const b = await corral.exec.run({ vault: 'v', backend, policy: 'permissive', cwd: '/workspace/src', argv: ['ls'] });
    assert.equal(b.stdout, 'main.c\n');
    assert.equal(b.command.cwd, '/workspace/src');
  });
}

test('cwd outside the workspace is refused before anything runs', async () => {
  const corral = setup();
  for (const cwd of ['../..', '/etc', '/workspace/../etc', 'src/../../x']) {
    const r = await corral.exec.run({ vault: 'v', policy: 'permissive', cwd, shell: 'touch /workspace/marker' });
    assert.equal(r.status, 'failed', cwd);
    assert.equal(r.error?.code, 'INVALID_PATH', cwd);
    assert.equal(execExitCode(r), 125);
  }
  const missing = await corral.exec.run({ vault: 'v', policy: 'permissive', cwd: 'nope', argv: ['true'] });
  assert.equal(missing.error?.code, 'PATH_NOT_FOUND');
  assert.throws(() => workspaceCwd('/'), (e) => isCorralError(e, 'INVALID_PATH'));
  assert.equal(workspaceCwd('/workspace'), '/');
});

test('bad requests fail with a clear code and change nothing', async () => {
  const corral = setup();
  const head = corral.store.getVault('v').head;
  const cases = [
    [{ argv: [] }, 'INVALID_ARGUMENT'],
    [{ argv: ['a'], shell: 'b' }, 'INVALID_ARGUMENT'],
    [{ shell: '   ' }, 'INVALID_ARGUMENT'],
    [{ argv: ['echo', 'a\0b'] }, 'INVALID_ARGUMENT'],
    [{ argv: ['true'], env: { 'BAD NAME': 'x' } }, 'INVALID_ARGUMENT'],
    [{ argv: ['true'], timeoutMs: -1 }, 'INVALID_ARGUMENT'],
    [{ argv: ['true'], backend: 'vm' as never }, 'INVALID_ARGUMENT'],
    [{ argv: ['true'], policy: 'no-such-preset' }, 'POLICY_INVALID'],
  ] as const;
  for (const [req, code] of cases) {
    const r = await corral.exec.run({ vault: 'v', policy: 'permissive', ...req } as never);
    assert.equal(r.status, 'failed', JSON.stringify(req));
    assert.equal(r.error?.code, code, JSON.stringify(req));
  }
  const noVault = await corral.exec.run({ vault: 'missing', argv: ['true'] });
  assert.equal(noVault.error?.code, 'VAULT_NOT_FOUND');
  assert.equal(corral.store.getVault('v').head, head);
});

test('policy deny: the command does not run, status denied, the decision says why', async () => {
  const corral = setup();
  const r = await corral.exec.run({ vault: 'v', shell: 'cat /etc/shadow > stolen.txt' });
  assert.equal(r.status, 'denied');
  assert.equal(r.decision?.action, 'deny');
  assert.ok(r.decision?.rule);
  assert.ok(r.decision?.reason);
  assert.equal(r.exitCode, null);
  assert.equal(execExitCode(r), 125);
  assert.equal(corral.files.reader('v').lstat('/stolen.txt'), undefined);
  const audit = corral.store.audit.list({ vault: 'v' }).filter((a) => a.op === 'exec');
  assert.equal(audit.at(-1)?.details.status, 'denied');
});

test('dangerous variables like LD_PRELOAD are refused unless a policy allows them', async () => {
  const corral = setup();
  const r = await corral.exec.run({ vault: 'v', env: { LD_PRELOAD: '/tmp/evil.so' }, argv: ['true'] });
  assert.equal(r.status, 'denied');
  assert.match(r.decision?.reason ?? '', /LD_PRELOAD/);
});

test('allow_with_checkpoint takes a checkpoint first; restoring it undoes the command', async () => {
  const corral = setup();
  const r = await corral.exec.run({ vault: 'v', shell: 'rm -rf src' });
  assert.equal(r.decision?.action, 'allow_with_checkpoint');
  assert.ok(r.checkpoint);
  assert.deepEqual(r.changes?.deleted.map((c) => c.path), ['/src/main.c']);
  corral.checkpoints.restore('v', r.checkpoint!);
  assert.ok(corral.files.reader('v').lstat('/src/main.c'));
  const never = await corral.exec.run({ vault: 'v', checkpoint: 'never', shell: 'rm -rf src' });
  assert.equal(never.checkpoint, null);
});

test('require_approval: pending with an approval id; approve then resume runs it once; deny refuses', async () => {
  const corral = setup();
  const r = await corral.exec.run({ vault: 'v', shell: 'curl https://example.com > page.html' });
  assert.equal(r.status, 'pending');
  assert.equal(execExitCode(r), 125);
  const id = r.approval!.id;
  assert.match(id, /^apr_[0-9a-f]{16}$/);
  const listed = corral.approvals.list({ state: 'pending' });
  assert.deepEqual(listed.map((a) => a.id), [id]);
  assert.equal(listed[0]!.command, 'curl https://example.com > page.html');
  // Not approved yet: resume refuses.
  const early = await corral.exec.run({ vault: 'v', resume: id });
  assert.equal(early.error?.code, 'APPROVAL_NOT_PENDING');
  corral.approvals.approve(id, 'fine');
  // The resumed command is the stored one; curl fails without network but it ran.
  const resumed = await corral.exec.run({ vault: '', resume: id, backend: 'host' });
  assert.equal(resumed.status, 'completed', JSON.stringify(resumed.error));
  assert.equal(resumed.command.shell, 'curl https://example.com > page.html');
  const twice = await corral.exec.run({ vault: '', resume: id });
  assert.equal(twice.error?.code, 'APPROVAL_NOT_PENDING', 'an approval runs a command once');
  const other = await corral.exec.run({ vault: 'v', shell: 'wget https://example.com' });
  corral.approvals.deny(other.approval!.id, 'no downloads');
  const denied = await corral.exec.run({ vault: 'v', resume: other.approval!.id });
  assert.equal(denied.error?.code, 'APPROVAL_NOT_PENDING');
  const ops = corral.store.audit.list({}).map((a) => a.op);
  for (const op of ['approval.request', 'approval.approve', 'approval.deny', 'approval.use']) assert.ok(ops.includes(op), op);
  const answer = corral.store.audit.list({}).find((a) => a.op === 'approval.deny');
  assert.equal(answer?.actor, 'test');
  assert.equal(answer?.details.selfAnswered, true, 'the same actor asked and answered: the record says so');
});

test('require_approval with a wait: the exec continues as soon as a person approves', async () => {
  const corral = setup();
  setTimeout(() => {
    const [pending] = corral.approvals.list({ state: 'pending' });
    corral.approvals.approve(pending!.id);
  }, 300);
  const r = await corral.exec.run({ vault: 'v', backend: 'host', approvalWaitMs: 5000, shell: 'curl --version >/dev/null 2>&1; echo ran' });
  assert.equal(r.status, 'completed');
  assert.equal(r.stdout, 'ran\n');
});

test('a limit the backend cannot enforce fails closed unless best effort is accepted', async () => {
  const corral = setup();
  const r = await corral.exec.run({ vault: 'v', backend: 'host', policy: 'permissive', limits: { tmpSizeBytes: 1 << 20 }, argv: ['true'] });
  assert.equal(r.status, 'failed');
  assert.equal(r.error?.code, 'LIMIT_UNENFORCEABLE');
  const ok = await corral.exec.run({ vault: 'v', backend: 'host', policy: 'permissive', bestEffort: true, limits: { tmpSizeBytes: 1 << 20 }, argv: ['true'] });
  assert.equal(ok.status, 'completed');
  assert.match(ok.warnings.join('\n'), /not enforced/);
});

test('a memory hog is killed and reported as oomKilled', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('cgroups need root here');
  const corral = setup();
  const r = await corral.exec.run({ vault: 'v', policy: 'permissive', limits: { memoryBytes: 64 << 20 }, argv: ['python3', '-c', 'x = bytearray(512 << 20); print(len(x))'] });
  assert.equal(r.status, 'completed');
  assert.equal(r.oomKilled, true);
  // bwrap's init reports a killed child as 128 + the signal.
  assert.ok(r.signal === 'SIGKILL' || r.exitCode === 137, `${r.signal} ${r.exitCode}`);
  assert.ok((r.usage.peakMemoryBytes ?? 0) <= (64 << 20) + (1 << 20));
});

test('usage reports peak memory and CPU time', async () => {
  const corral = setup();
  const r = await corral.exec.run({ vault: 'v', policy: 'permissive', argv: ['python3', '-c', 'x = bytearray(32 << 20); s = sum(range(3_000_000))'] });
  assert.ok((r.usage.peakMemoryBytes ?? 0) >= 32 << 20, String(r.usage.peakMemoryBytes));
  assert.ok(r.usage.cpuMs > 0);
});

test('binary output is returned as base64, marked so', async () => {
  const corral = setup();
  const r = await corral.exec.run({ vault: 'v', policy: 'permissive', shell: "printf '\\377\\000\\001'" });
  assert.equal(r.encoding, 'base64');
  assert.deepEqual([...Buffer.from(r.stdout, 'base64')], [255, 0, 1]);
});

test('output is streamed as it is produced, then the result', async () => {
  const corral = setup();
  const events: string[] = [];
  for await (const e of corral.exec.stream({ vault: 'v', policy: 'permissive', heartbeatMs: 100, shell: 'echo one; sleep 0.35; echo two' })) {
    if (e.type === 'stdout') events.push(`out:${e.data.toString().trim()}`);
    else if (e.type === 'result') events.push(`result:${e.result.status}`);
    else events.push(e.type);
  }
  assert.equal(events[0], 'started');
  assert.ok(events.indexOf('out:one') < events.indexOf('heartbeat'), events.join(','));
  assert.ok(events.indexOf('heartbeat') < events.indexOf('out:two'), events.join(','));
  assert.equal(events.at(-1), 'result:completed');
});

test('concurrent execs on one vault each commit their own changes', async () => {
  const corral = setup();
  const results = await Promise.all(Array.from({ length: 4 }, (_, i) => corral.exec.run({ vault: 'v', policy: 'permissive', shell: `echo ${i} > out-${i}.txt` })));
  for (const r of results) assert.equal(r.status, 'completed');
  const names = corral.files.reader('v').readDir('/').map((e) => e.name);
  for (let i = 0; i < 4; i++) assert.ok(names.includes(`out-${i}.txt`));
});

test('host and namespace agree on what a command changed', async () => {
  const script = 'echo a > a.txt; mv edit.txt moved.txt; chmod 755 keep.txt; ln -s keep.txt link; rm -rf src; mkdir src; echo y > src/new.c';
  const summaries = [];
  for (const backend of backends) {
    const corral = setup();
    const r = await corral.exec.run({ vault: 'v', backend, policy: 'permissive', shell: script });
    // Trees hold mtimes, which differ between two runs: compare what each path is.
    const entries: string[] = [];
    walkTree(corral.store.objects, corral.store.getCommit(r.changes!.commit!).tree, '/', (path, e) => void entries.push(`${path} ${e.kind} ${e.mode.toString(8)} ${e.kind === 'dir' ? '' : e.hash}`));
    summaries.push({ entries, added: r.changes!.added, modified: r.changes!.modified, deleted: r.changes!.deleted });
  }
  assert.deepEqual(summaries[0], summaries[1]);
});

test('scratch directories left by a dead process are removed', () => {
  const root = tempDir();
  mkdirSync(join(root, 'x-999999999-abc'));
  writeFileSync(join(root, 'x-999999999-abc', 'f'), 'x');
  mkdirSync(join(root, `x-${process.pid}-live`));
  assert.equal(cleanupStaleScratch(root), 1);
  assert.equal(existsSync(join(root, 'x-999999999-abc')), false);
  assert.equal(existsSync(join(root, `x-${process.pid}-live`)), true);
});

test('switching backends on one vault: the host scan after overlay execs finds exactly its own changes', async () => {
  const corral = setup();
  await corral.exec.run({ vault: 'v', backend: 'host', policy: 'permissive', argv: ['true'] });
  const a = await corral.exec.run({ vault: 'v', backend: 'namespace', policy: 'permissive', shell: 'echo 1 > edit.txt; echo n > ns.txt; rm gone.txt' });
  assert.equal(a.changes?.added.length, 1);
  const b = await corral.exec.run({ vault: 'v', backend: 'host', policy: 'permissive', shell: 'echo h > host.txt' });
  assert.deepEqual(b.changes?.added.map((c) => c.path), ['/host.txt']);
  assert.deepEqual(b.changes?.modified, []);
  assert.deepEqual(b.changes?.deleted, []);
  const c = await corral.exec.run({ vault: 'v', backend: 'host', policy: 'permissive', shell: 'echo 2 > edit.txt' });
  assert.deepEqual(c.changes?.modified.map((x) => x.path), ['/edit.txt']);
});

test('concurrent execs that change the same path: the second is not committed, its result names the conflict', async () => {
  const corral = setup();
  // A warm checkout at the head: both run side by side on it (under shared leases).
  corral.checkouts.warm('v');
  const [a, b] = await Promise.all([
    corral.exec.run({ vault: 'v', policy: 'permissive', shell: 'sleep 0.2; echo A > edit.txt' }),
    corral.exec.run({ vault: 'v', policy: 'permissive', shell: 'sleep 0.4; echo B > edit.txt; echo b > other.txt' }),
  ]);
  assert.ok(a.changes?.commit);
  assert.equal(b.changes?.commit, null);
  assert.equal(b.changes?.discarded, 'conflict');
  assert.deepEqual(b.changes?.conflicts, ['/edit.txt']);
  assert.match(b.warnings.join('\n'), /not committed: the vault changed meanwhile at \/edit.txt/);
  assert.equal(Buffer.from(corral.files.reader('v').readFile('/edit.txt')).toString(), 'A\n');
});

test('network stays off unless asked for; a networked command is told how to get it', async () => {
  const corral = setup();
  const r = await corral.exec.run({ vault: 'v', backend: 'namespace', policy: 'permissive', shell: 'curl --version >/dev/null 2>&1; cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " "' });
  assert.equal(r.stdout, 'lo\n');
  assert.match(r.warnings.join('\n'), /uses the network, which is off: ask for it with --network/);
});

test('a resumed approval must match the vault asked for, and an approved one expires unused', async () => {
  const corral = setup();
  corral.vaults.create('other');
  const r = await corral.exec.run({ vault: 'v', shell: 'curl https://example.com' });
  corral.approvals.approve(r.approval!.id);
  const wrong = await corral.exec.run({ vault: 'other', resume: r.approval!.id });
  assert.equal(wrong.error?.code, 'INVALID_ARGUMENT');
  assert.equal(corral.approvals.get(r.approval!.id).state, 'approved', 'a refused resume does not use the approval');
  corral.store.db.run('UPDATE approvals SET expires_at = 0 WHERE id = ?', r.approval!.id);
  const late = await corral.exec.run({ vault: 'v', resume: r.approval!.id });
  assert.equal(late.error?.code, 'APPROVAL_NOT_PENDING');
  assert.match(late.error?.message ?? '', /expired/);
});

test('a command cannot leave a setuid file in the vault', async () => {
  const corral = setup();
  const r = await corral.exec.run({ vault: 'v', policy: 'full-access', shell: 'cp /bin/true rootsh && chmod 4755 rootsh' });
  assert.equal(r.status, 'completed');
  assert.equal(corral.files.stat('v', '/rootsh').mode, 0o755);
});

test('a host exec that fails half-way (its supervisor killed) leaves nothing for the next exec to commit', async () => {
  const corral = setup();
  const r = await corral.exec.run({ vault: 'v', backend: 'host', policy: 'full-access', shell: 'echo half > half.txt; kill -9 $PPID; sleep 1' });
  assert.equal(r.status, 'failed');
  assert.equal(r.error?.code, 'EXEC_FAILED');
  const next = await corral.exec.run({ vault: 'v', backend: 'host', policy: 'permissive', argv: ['true'] });
  assert.equal(next.changes?.commit, null);
  assert.equal(corral.files.reader('v').lstat('/half.txt'), undefined);
});

test('a long-running exec does not hold others up: after a commit, the next exec runs on the head at once (a throwaway checkout)', async () => {
  const corral = setup();
  corral.checkouts.warm('v');
  const stop = new AbortController();
  const long = corral.exec.run({ vault: 'v', backend: 'namespace', policy: 'permissive', shell: 'sleep 30', timeoutMs: 60_000, signal: stop.signal });
  let longDone = false;
  void long.then(() => (longDone = true));
  await new Promise((r) => setTimeout(r, 300));
  const one = await corral.exec.run({ vault: 'v', backend: 'namespace', policy: 'permissive', shell: 'echo 1 > one.txt' });
  assert.ok(one.changes?.commit, 'committed beside the long exec');
  const two = await corral.exec.run({ vault: 'v', backend: 'namespace', policy: 'permissive', shell: 'cat one.txt; echo 2 > two.txt' });
  assert.equal(two.stdout, '1\n', 'it sees the head, not the pinned checkout');
  assert.ok(two.changes?.commit);
  assert.equal(longDone, false, 'both ran while the long exec still ran');
  const state = corral.checkouts.list('v').filter((c) => c.kind === 'warm');
  assert.equal(state.length, 1, 'the throwaway checkout is not registered');
  const { readdirSync } = await import('node:fs');
  const { dirname } = await import('node:path');
  assert.deepEqual(readdirSync(dirname(state[0]!.dir)).filter((n) => n.startsWith('.private-')), [], 'and it is gone');
  stop.abort();
  assert.equal((await long).status, 'completed');
});

test('a fresh fork borrows its source\'s checkout for its first exec (no export); the source stays untouched', async () => {
  const corral = setup();
  const source = corral.checkouts.warm('v');
  corral.vaults.fork('v', 'f');
  const first = await corral.exec.run({ vault: 'f', backend: 'namespace', policy: 'permissive', shell: 'cat edit.txt; echo fork > edit.txt; rm gone.txt' });
  assert.equal(first.status, 'completed', JSON.stringify(first.error));
  assert.equal(first.stdout, 'old\n');
  assert.deepEqual(first.changes?.modified.map((c) => c.path), ['/edit.txt']);
  assert.deepEqual(first.changes?.deleted.map((c) => c.path), ['/gone.txt']);
  assert.equal(corral.checkouts.list('f').filter((c) => c.kind === 'warm').length, 0, 'no checkout of its own was made');
  const { readFileSync, existsSync } = await import('node:fs');
  const { join } = await import('node:path');
  assert.equal(readFileSync(join(source.dir, 'edit.txt'), 'utf8'), 'old\n', "the source's checkout is not written");
  assert.ok(existsSync(join(source.dir, 'gone.txt')));
  assert.equal(Buffer.from(corral.files.reader('v').readFile('/edit.txt')).toString(), 'old\n');
  // The fork's head moved: its next exec gets a checkout of its own, with the change.
  const next = await corral.exec.run({ vault: 'f', backend: 'namespace', policy: 'permissive', shell: 'cat edit.txt; ls' });
  assert.equal(next.stdout, 'fork\nedit.txt\nkeep.txt\nsrc\n');
});
