// A PTY exec through the whole pipeline (policy, limits, change summary, commit, result envelope),
// on both backends.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NamespaceBackend } from '../../src/runtime/namespace-backend.ts';
import type { TerminalControl } from '../../src/runtime/terminal-control.ts';
import { execResultSchema } from '../../src/protocol/api-schemas.ts';
import { openCorral } from '../helpers.ts';

const namespaceCaps = await new NamespaceBackend().probe();
const backends = [
  { name: 'host' as const, skip: false as const },
  { name: 'namespace' as const, skip: namespaceCaps.available ? (false as const) : `namespace backend unavailable: ${namespaceCaps.reason}` },
];

function setup() {
  const corral = openCorral();
  corral.vaults.create('v');
  corral.files.write('v', '/keep.txt', new TextEncoder().encode('keep\n'));
  return corral;
}

for (const b of backends) {
  test(`${b.name}: a tty exec runs on a terminal, its writes become one commit, and the envelope says tty`, { skip: b.skip }, async () => {
    const corral = setup();
    const before = corral.store.getVault('v').head;
    const r = await corral.exec.run({ vault: 'v', backend: b.name, policy: 'permissive', tty: { cols: 90, rows: 20 }, shell: 'echo data > made.txt; tty -s && echo on-a-tty; stty size; echo "TERM=$TERM"; echo to-stderr >&2' });
    assert.equal(r.status, 'completed', JSON.stringify(r.error));
    assert.equal(r.exitCode, 0);
    assert.equal(r.tty, true);
    assert.equal(r.stdout, 'on-a-tty\r\n20 90\r\nTERM=xterm-256color\r\nto-stderr\r\n');
    assert.equal(r.stderr, '', 'stderr is merged into the terminal');
    assert.deepEqual(r.changes?.added.map((c) => [c.path, c.size]), [['/made.txt', 5]]);
    assert.equal(corral.store.getCommit(r.changes!.commit!).parent, before);
    assert.equal(Buffer.from(corral.files.reader('v').readFile('/made.txt')).toString(), 'data\n');
    assert.ok(execResultSchema.safeParse(r).success, 'the envelope stays valid v1');
  });

  test(`${b.name}: an interactive session through the pipeline: typed commands, exit code, change summary`, { skip: b.skip }, async () => {
    const corral = setup();
    let out = '';
    let terminal: TerminalControl | undefined;
    const r = await corral.exec.run({
      vault: 'v',
      backend: b.name,
      policy: 'permissive',
      argv: ['bash', '--norc', '--noprofile', '-i'],
      // HOME is the workspace: without this, bash's history would be part of the change set.
      env: { PS1: 'P$ ', HISTFILE: '/dev/null' },
      tty: { cols: 80, rows: 24 },
      onTerminal: (t) => {
        terminal = t;
        t.write('echo typed > typed.txt; rm keep.txt\n');
      },
      onEvent: (e) => {
        if (e.type !== 'stdout') return;
        out += e.data.toString();
        // The second prompt: the first line ran.
        if (out.split('P$ ').length === 3) terminal!.write('exit 4\n');
      },
    });
    assert.equal(r.status, 'completed', JSON.stringify(r.error));
    assert.equal(r.exitCode, 4);
    assert.equal(r.tty, true);
    assert.match(r.stdout, /exit/);
    assert.deepEqual(r.changes?.added.map((c) => c.path), ['/typed.txt']);
    assert.deepEqual(r.changes?.deleted.map((c) => c.path), ['/keep.txt']);
  });

  test(`${b.name}: a tty exec that times out is reported as such and keeps nothing running`, { skip: b.skip }, async () => {
    const corral = setup();
    const r = await corral.exec.run({ vault: 'v', backend: b.name, policy: 'permissive', tty: { cols: 80, rows: 24 }, shell: 'echo started; sleep 100', timeoutMs: 400, graceMs: 100 });
    assert.equal(r.status, 'completed');
    assert.equal(r.timedOut, true);
    assert.match(r.stdout, /started/);
  });
}

test('tty sizes are checked: whole numbers 1..1000, cols and rows only', async () => {
  const corral = setup();
  for (const tty of [{ cols: 0, rows: 24 }, { cols: 80, rows: 1001 }, { cols: 80.5, rows: 24 }, { cols: '80', rows: 24 }, { cols: 80 }, { cols: 80, rows: 24, x: 1 }, null, [80, 24]]) {
    const r = await corral.exec.run({ vault: 'v', backend: 'host', policy: 'permissive', argv: ['true'], tty: tty as never });
    assert.equal(r.status, 'failed', JSON.stringify(tty));
    assert.equal(r.error?.code, 'INVALID_ARGUMENT', JSON.stringify(tty));
    assert.match(r.error!.message, /tty/);
  }
  const ok = await corral.exec.run({ vault: 'v', backend: 'host', policy: 'permissive', argv: ['true'], tty: { cols: 1000, rows: 1 } });
  assert.equal(ok.status, 'completed');
  const plain = await corral.exec.run({ vault: 'v', backend: 'host', policy: 'permissive', argv: ['true'] });
  assert.equal('tty' in plain, false, 'the envelope of an exec without a terminal is unchanged');
});

test('a tty exec keeps an explicit TERM from env', async () => {
  const corral = setup();
  const r = await corral.exec.run({ vault: 'v', backend: 'host', policy: 'permissive', tty: { cols: 80, rows: 24 }, env: { TERM: 'screen' }, shell: 'echo "TERM=$TERM"' });
  assert.equal(r.stdout, 'TERM=screen\r\n');
});
