import { test } from 'node:test';
import assert from 'node:assert/strict';
import { extract } from 'tar-stream';
import { Readable } from 'node:stream';
import { Corral as BrowserCorral } from '../../src/sdk/index.ts';
import { CommandExitError, isCorralApiError, type Corral, type FileChangeEvent } from '../../src/sdk/node.ts';
import { startTestDaemon } from './sdk-daemon.ts';

const daemon = await startTestDaemon();
const enc = new TextEncoder();

/** The names and contents of a tar stream's files. */
async function untar(stream: ReadableStream<Uint8Array>): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const x = extract();
  const done = new Promise<void>((resolve, reject) => {
    x.on('entry', (header, body, next) => {
      const chunks: Buffer[] = [];
      body.on('data', (b: unknown) => chunks.push(b as Buffer));
      body.on('end', () => {
        if (header.type === 'file') out[header.name] = Buffer.concat(chunks).toString('utf8');
        next();
      });
    });
    x.on('finish', resolve);
    x.on('error', reject);
  });
  Readable.fromWeb(stream as import('node:stream/web').ReadableStream<Uint8Array>).pipe(x);
  await done;
  return out;
}

const clients: [string, () => Corral][] = [
  ['unix socket', () => daemon.owner],
  ['tcp + api key', () => BrowserCorral.connect({ url: daemon.url, apiKey: daemon.key(['sandboxes:read', 'sandboxes:write', 'exec', 'files']) })],
];

for (const [name, make] of clients) {
  test(`${name}: files round trip: write, read, ranges, edit, list, stat, mkdir, move, remove, download, upload, and an exec sees them`, async () => {
    const client = make();
    const sb = await client.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
    const f = sb.files;
    const written = await f.write('/src/a.txt', 'alpha beta beta\n');
    assert.equal(written.size, 16);
    assert.equal(written.mode, 0o644);
    assert.ok(written.commit);
    assert.equal(await f.readText('/src/a.txt'), 'alpha beta beta\n');
    assert.equal(await f.readText('src/a.txt', { offset: 6, length: 4 }), 'beta');
    await f.write('/src/a.txt', enc.encode('gamma\n'), { append: true });
    await f.write('/bin/run.sh', '#!/bin/sh\necho ran\n', { mode: 0o755 });
    assert.equal((await f.stat('/bin/run.sh')).mode, 0o755);
    await f.write('/raw.bin', new Uint8Array([0, 1, 2, 255]));
    assert.deepEqual([...(await f.read('/raw.bin'))], [0, 1, 2, 255]);
    await f.write('/blob.txt', new Blob(['from a blob']));
    assert.equal(await f.readText('/blob.txt'), 'from a blob');

    const ambiguous = await f.edit('/src/a.txt', 'beta', 'BETA').catch((e: unknown) => e);
    assert.ok(isCorralApiError(ambiguous, 'EDIT_AMBIGUOUS'), String(ambiguous));
    assert.equal(ambiguous.details.matches, 2);
    assert.equal((await f.edit('/src/a.txt', 'beta', 'BETA', { replaceAll: true })).replacements, 2);
    assert.ok(isCorralApiError(await f.edit('/src/a.txt', 'zeta', 'x').catch((e: unknown) => e), 'EDIT_NO_MATCH'));
    assert.equal(await f.readText('/src/a.txt'), 'alpha BETA BETA\ngamma\n');

    await f.mkdir('/deep/er/still', { parents: true });
    await f.move('/blob.txt', '/deep/blob.txt');
    assert.equal(await f.exists('/blob.txt'), false);
    assert.equal(await f.exists('/deep/blob.txt'), true);
    const root = await f.list();
    assert.deepEqual(root.entries.map((e) => e.name), ['bin', 'deep', 'raw.bin', 'src']);
    assert.equal(root.truncated, false);
    const everything = await f.list('/', { recursive: true, limit: 3 });
    assert.equal(everything.entries.length, 3);
    assert.equal(everything.truncated, true);
    assert.equal((await f.stat('/deep')).kind, 'dir');
    assert.equal((await f.remove('/deep', { recursive: true })).removed, 1);
    const notFound = await f.stat('/deep').catch((e: unknown) => e);
    assert.ok(isCorralApiError(notFound, 'PATH_NOT_FOUND') && notFound.status === 404);
    const traversal = await f.readText('/../../etc/passwd').catch((e: unknown) => e);
    assert.ok(isCorralApiError(traversal, ['INVALID_PATH', 'PATH_NOT_FOUND']), String(traversal));

    // The command sees the files, and its own writes come back through the files API.
    const run = await sb.exec('sh bin/run.sh && cat src/a.txt && echo made > out.txt');
    assert.equal(run.stdout, 'ran\nalpha BETA BETA\ngamma\n');
    assert.equal(await f.readText('/out.txt'), 'made\n');

    const tar = await f.download('/src');
    assert.deepEqual(await untar(tar), { 'a.txt': 'alpha BETA BETA\ngamma\n' });
    const missing = await f.download('/nope').catch((e: unknown) => e);
    assert.ok(isCorralApiError(missing, 'PATH_NOT_FOUND'));
    // Round trip: download the whole tree, upload it into a directory (bytes, then as a stream).
    const bytes = new Uint8Array(await new Response(await f.download('/')).arrayBuffer());
    const up = await f.upload('/copy', bytes);
    assert.equal(up.files, 4);
    assert.equal(await f.readText('/copy/src/a.txt'), 'alpha BETA BETA\ngamma\n');
    const streamed = await f.upload('/copy2', await f.download('/src'));
    assert.equal(streamed.files, 1);
    assert.equal(await f.readText('/copy2/a.txt'), 'alpha BETA BETA\ngamma\n');
    await sb.destroy();
    client.close();
  });

  test(`${name}: watch: changes from the files API and from execs, until closed`, async () => {
    const client = make();
    const sb = await client.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
    await sb.files.mkdir('/w');
    const watch = await sb.files.watch('/w');
    assert.equal(watch.path, '/w');
    assert.match(watch.commit, /\S/);
    const seen: FileChangeEvent[] = [];
    const reading = (async () => {
      for await (const change of watch) {
        seen.push(change);
        if (seen.length === 3) break;
      }
    })();
    await sb.files.write('/outside.txt', 'not watched');
    await sb.files.write('/w/a.txt', 'one');
    await sb.exec('echo two >> w/a.txt && echo new > w/b.txt');
    await reading;
    assert.deepEqual(
      seen.map((c) => [c.path, c.kind]),
      [
        ['/w/a.txt', 'created'],
        ['/w/a.txt', 'modified'],
        ['/w/b.txt', 'created'],
      ],
    );
    await watch.close();
    // close() ends a watch even while a read waits for a change.
    const idle = await sb.files.watch('/w');
    const waiting = (async () => {
      const out: FileChangeEvent[] = [];
      for await (const c of idle) out.push(c);
      return out;
    })();
    setTimeout(() => void idle.close(), 100);
    assert.deepEqual(await waiting, []);
    await sb.destroy();
    client.close();
  });
}

test('approvals: a command the policy holds, listed, read, approved or denied; execOrThrow names the approval; waitForApprovalMs runs it once approved', async () => {
  const client = daemon.owner;
  const sb = await client.sandboxes.create({ backend: 'namespace', policy: 'permissive' });
  const held = await sb.exec('sudo true');
  assert.equal(held.status, 'pending');
  const id = held.approval!.id;
  const thrown = await sb.execOrThrow('sudo id').catch((e: unknown) => e);
  assert.ok(thrown instanceof CommandExitError);
  assert.match(thrown.message, /waits for approval apr_/);

  const pending = await client.approvals.list({ state: 'pending' });
  assert.deepEqual(pending.map((a) => a.id).sort(), [id, thrown.result.approval!.id].sort());
  const one = await client.approvals.get(id);
  assert.equal(one.state, 'pending');
  assert.equal(one.sandbox, sb.id);
  assert.match(one.command, /sudo true/);
  const approved = await client.approvals.approve(id, { reason: 'fine' });
  assert.equal(approved.state, 'approved');
  assert.equal(approved.answeredBy, 'owner');
  assert.equal(approved.answerReason, 'fine');
  const again = await client.approvals.approve(id).catch((e: unknown) => e);
  assert.ok(isCorralApiError(again, 'APPROVAL_NOT_PENDING') && again.status === 409);
  const denied = await client.approvals.deny(thrown.result.approval!.id, 'no root here');
  assert.equal(denied.state, 'denied');
  assert.equal((await client.approvals.list({ state: 'pending' })).length, 0);
  assert.ok(isCorralApiError(await client.approvals.get('apr_nope').catch((e: unknown) => e), ['INVALID_ARGUMENT', 'APPROVAL_NOT_FOUND']));

  // An agent that waits for the answer: its exec runs once a person approves (here another client).
  const waiting = sb.exec('sudo echo approved-run', { waitForApprovalMs: 30_000 });
  let asked: string | undefined;
  for (let i = 0; i < 500 && !asked; i++) {
    await new Promise((r) => setTimeout(r, 10));
    asked = (await client.approvals.list({ state: 'pending' }))[0]?.id;
  }
  assert.ok(asked);
  await client.approvals.approve(asked);
  const ran = await waiting;
  assert.notEqual(ran.status, 'pending');
  assert.equal(ran.command.shell, 'sudo echo approved-run');
  await sb.destroy();
});
