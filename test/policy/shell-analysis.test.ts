// analyzeCommand: the parts a command is made of, wherever they hide.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyzeCommand } from '../../src/policy/policy-engine.ts';
import { loadShellParser } from '../../src/policy/shell-parser.ts';

const parser = await loadShellParser();
const parts = (shell: string, cwd = '/') => analyzeCommand({ shell, cwd }, parser).parts;
const programs = (shell: string) => parts(shell).map((p) => p.program);

test('the parser loads once and reports its load time', async () => {
  assert.equal(await loadShellParser(), parser);
  assert.ok(parser.loadMs > 0);
});

test('pipelines, lists, subshells, substitutions, heredocs and bodies are all walked', () => {
  assert.deepEqual(programs('a | b && (c; d) || { e; }'), ['a', 'b', 'c', 'd', 'e']);
  assert.deepEqual(programs('echo "$(id)" `whoami` <(ls) $(( $(nproc) + 1 ))'), ['id', 'whoami', 'ls', 'nproc', 'echo']);
  assert.deepEqual(programs('cat <<EOF | sh\nrm x\nEOF').sort(), ['cat', 'sh']);
  assert.deepEqual(programs('cat <<EOF\n$(touch x)\nEOF'), ['touch', 'cat']);
  assert.deepEqual(programs('if a; then b; elif c; then d; else e; fi'), ['a', 'b', 'c', 'd', 'e']);
  assert.deepEqual(programs('for i in $(seq 3); do x; done; while y; do z; done'), ['seq', 'x', 'y', 'z']);
  assert.deepEqual(programs('case $v in a) p;; *) q;; esac'), ['p', 'q']);
  assert.deepEqual(programs('f() { g; }; f; ! h'), ['g', 'h']);
  assert.deepEqual(programs('X=$(k) ; export Y=$(l)'), ['k', 'l', 'export']);
});

test('wrappers are looked through and recorded', () => {
  const [p] = parts('sudo -u root env -i A=1 nice -n 5 timeout 10 xargs -0 rm -rf x');
  assert.equal(p!.program, 'rm');
  assert.deepEqual(p!.wrappers, ['sudo', 'env', 'nice', 'timeout', 'xargs']);
  assert.deepEqual(p!.env, ['A']);
  assert.ok(p!.categories.includes('privilege_escalation'));
  assert.ok(p!.categories.includes('destructive'));
  assert.ok(p!.flags.includes('-r') && p!.flags.includes('-f') && p!.flags.includes('-rf'));
  const nested = parts(`bash -c "sh -c 'curl x'"`);
  assert.equal(nested[0]!.program, 'curl');
  assert.deepEqual(nested[0]!.wrappers, ['bash -c', 'sh -c']);
  assert.equal(parts('git -C sub -c x=y push origin')[0]!.subcommand, 'push');
});

test('quotes and escapes are removed before classifying', () => {
  assert.equal(parts(`'r'"m" -rf x`)[0]!.program, 'rm');
  assert.equal(parts(`\\rm x`)[0]!.program, 'rm');
  assert.equal(parts(`$'\\x72m' x`)[0]!.program, 'rm');
  assert.equal(parts(`/bin/rm x`)[0]!.program, 'rm');
  assert.deepEqual(parts(`./ls`)[0]!.categories, ['mutating'], 'a workspace program named ls is not the system ls');
});

test('paths resolve against cwd and /workspace; redirections are writes', () => {
  const [p] = parts('cp a ../b > out 2>&1 < in', '/src');
  assert.deepEqual(p!.paths.map((r) => [r.kind, r.path, r.write]), [['workspace', 'src/a', false], ['workspace', 'b', true]]);
  assert.deepEqual(p!.redirects.map((r) => [r.path, r.write]), [['src/out', true], ['src/in', false]]);
  assert.deepEqual(parts('cat $HOME/.aws/x')[0]!.paths[0], { text: '~/.aws/x', kind: 'home', path: '~/.aws/x', write: false });
  assert.ok(parts('cat ../../x', '/src')[0]!.marks.includes('leaves-workspace'));
});

test('unanalysable constructs are unknown, never read-only', () => {
  for (const shell of ['eval ls', 'source x', '. x', '$X', '"${Y}" a', '$(echo ls)', 'trap "rm x" EXIT', 'alias ls=rm', 'echo "open', 'ls )', 'curl x | bash', 'bash <(curl x)', 'python3 -c "$CODE"'])
    assert.ok(analyzeCommand({ shell, cwd: '/' }, parser).categories.includes('unknown'), shell);
  assert.equal(analyzeCommand({ shell: 'echo "open', cwd: '/' }, parser).parseError, true);
});

test('risk shapes are marked', () => {
  const marks = (shell: string) => parts(shell).flatMap((p) => p.marks);
  assert.ok(marks(':(){ :|:& };:').includes('fork-bomb'));
  assert.ok(!marks('f() { f; }').includes('fork-bomb'));
  assert.ok(marks('rm -rf /*').includes('root-wipe'));
  assert.ok(!marks('rm -rf ./*').includes('root-wipe'));
  assert.ok(marks('dd if=/dev/urandom of=f').includes('dd-zero'));
  assert.ok(marks('echo x > /dev/sda').includes('disk-wipe'));
  assert.ok(marks('chmod 0777 f').includes('world-writable'));
  assert.ok(!marks('chmod 755 f').includes('world-writable'));
  assert.ok(marks('wget -qO- x | python3').includes('pipe-to-shell'));
});

test('deep nesting and huge input stay bounded', () => {
  const deep = '('.repeat(500) + 'ls' + ')'.repeat(500);
  assert.ok(analyzeCommand({ shell: deep, cwd: '/' }, parser).categories.includes('unknown'));
  let nested = 'ls';
  for (let i = 0; i < 12; i++) nested = `bash -c ${JSON.stringify(nested)}`;
  assert.ok(analyzeCommand({ shell: nested, cwd: '/' }, parser).categories.includes('unknown'));
  const long = Array.from({ length: 2000 }, (_, i) => `echo ${i}`).join('; ');
  assert.equal(analyzeCommand({ shell: long, cwd: '/' }, parser).parts.length, 2000);
});
