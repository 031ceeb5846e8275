// The dashboard in a real browser (Debian's chromium driven by playwright-core) against a real
// daemon reached through `corral dashboard`'s loopback proxy: a sandbox appears, an exec's output
// streams, the terminal takes typing, an approval answered in the page lets the agent's exec run,
// a diff opens, a checkpoint is restored. Each page is saved under test-output/screenshots/.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startDashboardProxy, type DashboardProxy } from '../../src/cli/commands/dashboard-commands.ts';
import { ROOT } from '../helpers.ts';
import { startTestDaemon, type TestDaemon } from '../sdk/sdk-daemon.ts';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(ROOT, 'test-output', 'screenshots');
const skip = existsSync(CHROMIUM) ? false : 'chromium is not installed (apt-get install chromium; scripts/setup.sh does it as root)';

let daemon: TestDaemon;
let proxy: DashboardProxy;
let browser: Browser;
let page: Page;

// Started at the top level: the daemon helper registers its own after() hook, which must belong to the file.
if (!skip) {
  if (!existsSync(join(ROOT, 'dist-web', 'index.html'))) execFileSync(join(ROOT, 'node_modules', '.bin', 'vite'), ['build', '--config', 'web/vite.config.ts'], { cwd: ROOT, stdio: 'ignore' });
  mkdirSync(SHOTS, { recursive: true });
  daemon = await startTestDaemon();
  proxy = await startDashboardProxy({ socketPath: daemon.socket });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await (await browser.newContext({ viewport: { width: 1360, height: 860 } })).newPage();
  page.setDefaultTimeout(15_000);
  page.on('console', (m) => { if (m.type() === 'error') console.log(`# browser: ${m.text()}`); });
  page.on('pageerror', (e) => console.log(`# page error: ${e.message}`));
}

after(async () => {
  await browser?.close();
  await proxy?.close();
});

const shot = (name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`) });

function raw(path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: proxy.port, path, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => {
        if ((res.statusCode ?? 0) >= 500) console.log(`# ${path}: ${res.statusCode} ${body.slice(0, 200)}`);
        resolve(res.statusCode ?? 0);
      });
    });
    req.on('error', reject);
    req.end();
  });
}

test('the proxy: /ui/ is public, the API needs the token, a foreign Host is refused', { skip }, async () => {
  const host = `127.0.0.1:${proxy.port}`;
  assert.equal(await raw('/ui/', { host }), 200);
  assert.equal(await raw('/v1/sandboxes', { host }), 401);
  assert.equal(await raw('/v1/sandboxes', { host, authorization: 'Bearer crl_wrongwrongwrongwrongwrongwrongwrongwrongwro' }), 401);
  assert.equal(await raw('/v1/sandboxes', { host, authorization: `Bearer ${proxy.token}` }), 200);
  assert.equal(await raw('/v1/sandboxes', { host: 'evil.example', authorization: `Bearer ${proxy.token}` }), 421);
});

test('the dashboard: sandboxes live, exec output, terminal, approvals, timeline and diff, restore, audit', { skip }, async () => {
  // Sign in through the link's fragment; the key leaves the address bar.
  await page.goto(proxy.url);
  await page.getByRole('heading', { name: 'Sandboxes' }).waitFor();
  assert.doesNotMatch(page.url(), /crl_/);

  // A sandbox made elsewhere appears (the event stream), without a reload.
  const sb = await daemon.owner.sandboxes.create({ name: 'web-demo', backend: 'host' });
  await page.locator(`tr[data-sandbox="${sb.id}"]`).waitFor();
  await shot('sandboxes');

  // Files and a checkpoint, then a change: the timeline has something to show.
  await sb.files.write('/app.py', 'def greet(name):\n    return "hello " + name\n');
  await sb.checkpoints.save({ name: 'before-change' });
  await sb.exec(`printf 'def greet(name):\\n    return f"hi {name}"\\n' > app.py && echo changed`);
  // Its resource use follows (the exec's end reloads the list).
  await page.locator(`tr[data-sandbox="${sb.id}"] [data-testid="usage"]`, { hasText: /^1 exec, CPU / }).waitFor();

  // An exec's output streams into the page.
  await page.locator(`tr[data-sandbox="${sb.id}"] a`).click();
  await page.getByRole('heading', { name: 'web-demo' }).waitFor();
  const bg = (await sb.exec('for i in 1 2 3 4 5 6 7 8; do echo "line $i $(date +%s%N)"; sleep 0.15; done', { background: true })) as { id: string };
  await page.locator(`tr[data-exec="${bg.id}"]`).click();
  await page.locator('[data-testid="exec-output"]', { hasText: 'line 3' }).waitFor();
  await page.locator('[data-testid="exec-output"]', { hasText: 'line 8' }).waitFor();
  await page.locator('[data-testid="exec-done"]', { hasText: 'exit 0' }).waitFor();
  const latency = await page.evaluate(() => (globalThis as { __corralLatency?: number[] }).__corralLatency ?? []);
  assert.ok(latency.length > 0);
  const sorted = [...latency].sort((a, b) => a - b);
  console.log(`# exec output latency to the browser: median ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} ms, max ${sorted.at(-1)!.toFixed(1)} ms over ${sorted.length} frames`);
  await shot('sandbox');

  // The terminal: type into bash over the PTY WebSocket.
  await page.getByRole('button', { name: 'Open terminal' }).click();
  await page.locator('[data-testid="terminal-status"]', { hasText: 'exec_' }).waitFor();
  await page.locator('[data-testid="terminal"] .xterm-helper-textarea').focus();
  await page.keyboard.type('echo web-$((6*7))\n');
  await page.locator('[data-testid="terminal"] .xterm-rows', { hasText: 'web-42' }).waitFor();
  await shot('terminal');
  await page.getByRole('button', { name: 'Close terminal' }).click();

  // A named process appears with the sandbox's events; clicking it follows its logs.
  const ticker = await sb.processes.start({ name: 'ticker', cmd: 'for i in 1 2 3; do echo tick-$i; sleep 0.1; done; sleep 60' });
  await page.locator('[data-testid="processes"] tr', { hasText: 'ticker' }).click();
  await page.locator('pre.output', { hasText: 'tick-3' }).waitFor();
  await shot('processes');
  await ticker.stop({ timeoutMs: 500 });

  // An agent's command waits for a person: approving it in the page lets the exec run.
  const agent = daemon.service.exec.run({ vault: sb.vault, shell: 'eval "echo approved-run"', backend: 'host', approvalWaitMs: 30_000 });
  await page.getByRole('link', { name: /Approvals/ }).click();
  const card = page.locator('[data-approval]', { hasText: 'approved-run' });
  await card.waitFor();
  await shot('approvals');
  await card.locator('input').fill('looks fine');
  await card.locator('[data-testid="approve"]').click();
  const result = await agent;
  assert.equal(result.status, 'completed');
  assert.equal(result.exitCode, 0);
  assert.match(result.stdout, /approved-run/);
  await page.locator('[data-testid="no-pending"]').waitFor();

  // The timeline: click the exec's commit for its diff, side by side and highlighted.
  await page.goto(proxy.url.replace(/#.*/, `#/sandboxes/${sb.id}/timeline`));
  const commit = page.locator('[data-commit]', { hasText: 'exec: printf' });
  await commit.click();
  const diff = page.locator('[data-testid="file-diff"]', { hasText: '/app.py' });
  await diff.waitFor();
  await diff.locator('td.code.del', { hasText: 'return "hello " + name' }).waitFor();
  await diff.locator('td.code.add', { hasText: 'return f"hi {name}"' }).waitFor();
  await diff.locator('.hljs-keyword').first().waitFor();
  await shot('timeline');

  // Restore the checkpoint, confirmed in a dialog.
  await page.locator('[data-restore="before-change"]').click();
  await page.getByRole('dialog').waitFor();
  await shot('restore-confirm');
  await page.locator('[data-testid="confirm-restore"]').click();
  await page.locator('[data-testid="timeline-message"]', { hasText: 'Restored before-change' }).waitFor();
  assert.equal(await sb.files.readText('/app.py'), 'def greet(name):\n    return "hello " + name\n');

  // The audit log and its chain's verification.
  await page.getByRole('link', { name: 'Audit log' }).click();
  await page.locator('[data-testid="audit-verify"]', { hasText: 'chain verified' }).waitFor();
  await page.locator('[data-testid="audit"] td', { hasText: 'approval.approve' }).first().waitFor();
  await shot('audit');
});
