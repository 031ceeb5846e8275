// Policy files: valid YAML/JSON compile on top of presets; invalid ones fail with POLICY_INVALID naming the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { evaluate, listPresets, loadPolicy } from '../../src/policy/policy-engine.ts';
import { tempDir } from '../helpers.ts';

const dir = tempDir('corral-policy-');
let n = 0;
function file(text: string, ext = 'yaml'): string {
  const path = join(dir, `p${n++}.${ext}`);
  writeFileSync(path, text);
  return path;
}
const req = (shell: string, env: Record<string, string> = {}) => ({ shell, cwd: '/', env });

test('listPresets names every preset with a description', () => {
  const names = listPresets().map((p) => p.name);
  assert.deepEqual(names.sort(), ['full-access', 'paranoid', 'permissive', 'read-only', 'strict', 'workspace-write', 'workstation']);
  for (const p of listPresets()) assert.ok(p.description.length > 20);
});

test('unknown preset or spec is POLICY_INVALID', async () => {
  await assert.rejects(loadPolicy('nope'), { code: 'POLICY_INVALID', message: /workstation/ });
  await assert.rejects(loadPolicy(join(dir, 'missing.yaml')), { code: 'POLICY_INVALID', message: /missing\.yaml/ });
});

test('a YAML file extends a preset: its rules come first, the floor stays', async () => {
  const p = await loadPolicy(file(`
extends: workstation
rules:
  - id: allow-curl-example
    match: { program: curl, args: "https://example.com/*" }
    action: allow
    reason: example.com is trusted
    limits: { timeout: 30s, memory: 256M }
  - match: { writes: ".git/**" }
    action: deny
    reason: .git is read-only
  - match: { paths: "secrets/**" }
    action: deny
  - match: { program: git, subcommand: push, flags: [--force, -f] }
    action: deny
  - match: { program: cat }
    action: allow
limits: { pids: 64, timeoutMs: 60000 }
`));
  const curl = evaluate(p, req('curl https://example.com/a'));
  assert.equal(curl.action, 'allow');
  assert.equal(curl.rule, 'allow-curl-example');
  assert.deepEqual(curl.limits, { timeoutMs: 30_000, memoryBytes: 256 * 1024 * 1024, pids: 64 });
  assert.equal(evaluate(p, req('curl https://other.org')).action, 'require_approval');
  assert.equal(evaluate(p, req('cat .git/config')).action, 'allow');
  const w = evaluate(p, req('echo x > .git/HEAD'));
  assert.equal(w.action, 'deny');
  assert.equal(w.rule, 'file:rules[1]');
  assert.equal(evaluate(p, req('rm -rf .git')).action, 'deny');
  assert.equal(evaluate(p, { shell: 'cat ../secrets/key', cwd: '/src', env: {} }).rule, 'file:rules[2]');
  assert.equal(evaluate(p, req('git push -f origin main')).action, 'deny');
  assert.equal(evaluate(p, req('git push origin main')).action, 'require_approval');
  // The file allows cat, but the workstation floor still denies host paths.
  const ssh = evaluate(p, req('cat ~/.ssh/id_rsa'));
  assert.equal(ssh.action, 'deny');
  assert.equal(ssh.rule, 'workstation.host-paths');
  assert.deepEqual(evaluate(p, req('ls')).limits, { timeoutMs: 60_000, pids: 64 });
});

test('a JSON file without extends uses only its rules and its default', async () => {
  const p = await loadPolicy(file(JSON.stringify({
    name: 'mine',
    default: 'deny',
    network: false,
    rules: [
      { id: 'ro', match: { category: 'read_only' }, action: 'allow' },
      { match: { paths: '~/.ssh/**' }, action: 'deny', reason: 'never' },
    ],
  }), 'json'));
  assert.equal(p.name, 'mine');
  assert.equal(evaluate(p, req('ls')).action, 'allow');
  const d = evaluate(p, req('touch x'));
  assert.equal(d.action, 'deny');
  assert.equal(d.rule, 'mine.default');
  const net = evaluate(p, req('curl x'));
  assert.equal(net.action, 'deny');
  assert.equal(net.constraints?.network, false);
});

test('env: dangerous variables are denied unless a policy allows them by name', async () => {
  const ws = await loadPolicy('workstation');
  for (const name of ['LD_PRELOAD', 'LD_LIBRARY_PATH', 'LD_AUDIT', 'DYLD_INSERT_LIBRARIES', 'BASH_ENV', 'ENV', 'PROMPT_COMMAND', 'PS4', 'SHELLOPTS', 'BASHOPTS', 'IFS', 'GCONV_PATH', 'NODE_OPTIONS', 'PYTHONSTARTUP', 'PERL5OPT', 'BASH_FUNC_ls%%']) {
    const d = evaluate(ws, req('ls', { [name]: 'x' }));
    assert.equal(d.action, 'deny', name);
    assert.match(d.rule, /^env\./, name);
  }
  assert.equal(evaluate(ws, req('ls', { FOO: 'bar', LANG: 'C.UTF-8' })).action, 'allow');
  assert.equal(evaluate(ws, req('ls', { 'BAD NAME': 'x' })).rule, 'env.invalid');
  assert.equal(evaluate(await loadPolicy('full-access'), req('ls', { LD_PRELOAD: 'x' })).action, 'deny');
  const p = await loadPolicy(file('extends: workstation\nenv:\n  allow: [LD_LIBRARY_PATH, NODE_OPTIONS]\n'));
  assert.equal(evaluate(p, req('ls', { LD_LIBRARY_PATH: '/opt/lib', NODE_OPTIONS: '--max-old-space-size=512' })).action, 'allow');
  assert.equal(evaluate(p, req('NODE_OPTIONS=--inspect node x.js')).action, 'allow_with_checkpoint');
  assert.equal(evaluate(p, req('ls', { LD_PRELOAD: 'x' })).action, 'deny');
});

const invalid: [string, string, RegExp][] = [
  ['rules:\n  - action: maybe\n', 'yaml', /rules\[0\]\.action/],
  ['rules:\n  - match: { program: rm }\n', 'yaml', /rules\[0\]\.action/],
  ['rules:\n  - match: { programme: rm }\n    action: deny\n', 'yaml', /rules\[0\]\.match.*programme/],
  ['rules:\n  - match: { category: scary }\n    action: deny\n', 'yaml', /rules\[0\]\.match\.category/],
  ['rules:\n  - match: { network: "yes" }\n    action: deny\n', 'yaml', /rules\[0\]\.match\.network/],
  ['rules:\n  - match: { mark: nope }\n    action: deny\n', 'yaml', /rules\[0\]\.match\.mark/],
  ['rules:\n  - action: allow\n    limits: { timeout: soon }\n', 'yaml', /rules\[0\]\.limits\.timeout/],
  ['rules:\n  - action: allow\n    limits: { pids: -1 }\n', 'yaml', /rules\[0\]\.limits\.pids/],
  ['extends: lax\n', 'yaml', /extends/],
  ['env: { allow: ["NOT A NAME"] }\n', 'yaml', /env\.allow\[0\]/],
  ['rules: 5\n', 'yaml', /rules/],
  ['colour: blue\n', 'yaml', /colour/],
  ['rules: [\n', 'yaml', /not valid YAML/],
  ['{"rules": [}', 'json', /not valid JSON/],
  ['[1, 2]', 'json', /top level/],
  ['{"rules": [{"id": "bad id!", "action": "deny"}]}', 'json', /rules\[0\]\.id/],
];

test(`invalid policy files (${invalid.length}) are POLICY_INVALID naming the file and the field`, async () => {
  for (const [text, ext, field] of invalid) {
    const path = file(text, ext);
    await assert.rejects(loadPolicy(path), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'POLICY_INVALID', text);
      assert.ok(e.message.includes(path), `${e.message} names the file`);
      assert.match(e.message, field, `${text} -> ${e.message}`);
      return true;
    });
  }
});
