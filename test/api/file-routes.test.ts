import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { join } from 'node:path';
import { pack } from 'tar-stream';
import { createApi } from '../../src/api/api-app.ts';
import { startDaemonServer } from '../../src/daemon/daemon-server.ts';
import {
  errorEnvelopeSchema,
  fileChangeEventSchema,
  fileEditResultSchema,
  fileInfoSchema,
  fileListSchema,
  fileMkdirResultSchema,
  fileMoveResultSchema,
  fileRemoveResultSchema,
  fileUploadResultSchema,
  fileWatchReadySchema,
  fileWriteResultSchema,
  newId,
} from '../../src/protocol/api-schemas.ts';
import { openCorral, tempDir } from '../helpers.ts';
import { errorOf, quiet } from './api-test-helpers.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

function setup(options: { bodyLimit?: number; maxFileBytes?: number; maxTarBytes?: number } = {}) {
  const corral = openCorral();
  corral.vaults.create('src');
  corral.files.write('src', '/a.txt', enc.encode('alpha beta beta\n'));
  const app = createApi({
    corral,
    logger: quiet,
    version: '0.0.0',
    ...(options.bodyLimit ? { bodyLimit: options.bodyLimit } : {}),
    files: { watchIntervalMs: 20, ...(options.maxFileBytes ? { maxFileBytes: options.maxFileBytes } : {}), ...(options.maxTarBytes ? { maxTarBytes: options.maxTarBytes } : {}) },
  });
  const sb = corral.sandboxes.create({ vault: 'src' });
  const base = `/v1/sandboxes/${sb.id}/files`;
  const call = (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) =>
    app.request(path, {
      method,
      ...(body === undefined
        ? { headers }
        : body instanceof Uint8Array
          ? { body, headers: { 'content-type': 'application/octet-stream', ...headers } }
          : { body: typeof body === 'string' ? body : JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } }),
    });
  const head = () => corral.store.getVault(sb.vault).head;
  return { corral, app, sb, base, call, head };
}

const q = (path: string, extra = '') => `?path=${encodeURIComponent(path)}${extra}`;

function tarOf(entries: { name: string; type?: 'file' | 'directory' | 'symlink'; body?: string; linkname?: string }[]): Promise<Uint8Array> {
  const p = pack();
  for (const e of entries) {
    const header = { name: e.name, type: e.type ?? 'file', ...(e.linkname ? { linkname: e.linkname } : {}) } as const;
    if (e.type && e.type !== 'file') p.entry(header);
    else p.entry(header, e.body ?? '');
  }
  p.finalize();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    p.on('data', (b: unknown) => chunks.push(b as Buffer));
    p.on('end', () => resolve(Buffer.concat(chunks)));
    p.on('error', reject);
  });
}

test('PUT and GET a file: raw bytes, byte ranges, headers, append, mode, parents', async () => {
  const { corral, sb, base, call } = setup();
  const w = await call('PUT', `${base}${q('/src/b.bin')}`, new Uint8Array([0, 1, 2, 3, 4, 5, 255]));
  assert.equal(w.status, 200);
  const written = fileWriteResultSchema.parse(await w.json());
  assert.equal(written.path, '/src/b.bin');
  assert.equal(written.size, 7);
  assert.equal(written.mode, 0o644);
  assert.equal(corral.store.getVault(sb.vault).head, written.commit);

  const r = await call('GET', `${base}${q('src/b.bin')}`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'application/octet-stream');
  assert.equal(r.headers.get('x-corral-size'), '7');
  assert.equal(r.headers.get('x-corral-mode'), '0644');
  assert.deepEqual([...new Uint8Array(await r.arrayBuffer())], [0, 1, 2, 3, 4, 5, 255]);
  const part = await call('GET', `${base}${q('/src/b.bin', '&offset=2&length=3')}`);
  assert.equal(part.headers.get('x-corral-size'), '7');
  assert.equal(part.headers.get('x-corral-offset'), '2');
  assert.deepEqual([...new Uint8Array(await part.arrayBuffer())], [2, 3, 4]);
  assert.deepEqual([...new Uint8Array(await (await call('GET', `${base}${q('/src/b.bin', '&offset=6')}`)).arrayBuffer())], [255]);
  await errorOf(await call('GET', `${base}${q('/src/b.bin', '&offset=8')}`), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', `${base}${q('/src')}`), 409, 'IS_A_DIRECTORY');
  await errorOf(await call('GET', `${base}${q('/nope')}`), 404, 'PATH_NOT_FOUND');

  const app1 = fileWriteResultSchema.parse(await (await call('PUT', `${base}${q('/log.txt', '&mode=0600')}`, enc.encode('one\n'))).json());
  assert.equal(app1.mode, 0o600);
  const app2 = fileWriteResultSchema.parse(await (await call('PUT', `${base}${q('/log.txt', '&append=true')}`, enc.encode('two\n'))).json());
  assert.equal(app2.size, 8);
  assert.equal(app2.mode, 0o600);
  assert.equal(dec.decode(corral.files.cat(sb.vault, '/log.txt')), 'one\ntwo\n');
  // An empty body writes an empty file.
  assert.equal(fileWriteResultSchema.parse(await (await call('PUT', `${base}${q('/empty')}`)).json()).size, 0);
  await errorOf(await call('PUT', `${base}${q('/no/such/dir.txt', '&parents=false')}`, enc.encode('x')), 404, 'PATH_NOT_FOUND');
  await errorOf(await call('PUT', `${base}${q('/x', '&mode=4755')}`, enc.encode('x')), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('PUT', `${base}${q('/x', '&mode=rwx')}`, enc.encode('x')), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('PUT', `${base}${q('/src')}`, enc.encode('x')), 409, 'IS_A_DIRECTORY');
  // The source vault is untouched: the sandbox works on its fork.
  assert.deepEqual(corral.files.ls('src', '/').map((f) => f.name), ['a.txt']);
});

test('PUT has its own body limit (not the global one): 413 before writing anything, declared or streamed', async () => {
  const { corral, app, sb, base, call, head } = setup({ bodyLimit: 1024, maxFileBytes: 64 * 1024 });
  const big = new Uint8Array(32 * 1024).fill(7);
  assert.equal((await call('PUT', `${base}${q('/big')}`, big)).status, 200, 'over the global limit, under the file limit');
  const start = head();
  await errorOf(await call('PUT', `${base}${q('/huge')}`, new Uint8Array(64 * 1024 + 1)), 413, 'PAYLOAD_TOO_LARGE');
  let pulled = 0;
  const endless = new ReadableStream<Uint8Array>({
    pull(c) {
      pulled++;
      c.enqueue(new Uint8Array(16 * 1024));
    },
  });
  await errorOf(await app.request(`${base}${q('/huge')}`, { method: 'PUT', body: endless, duplex: 'half' } as RequestInit), 413, 'PAYLOAD_TOO_LARGE');
  assert.ok(pulled < 16, `stopped reading early (${pulled} chunks)`);
  await errorOf(await app.request(`${base}${q('/huge')}`, { method: 'PUT', body: 'x', headers: { 'content-length': '99999999999' } }), 413, 'PAYLOAD_TOO_LARGE');
  assert.equal(head(), start);
  assert.equal(corral.files.ls(sb.vault, '/').some((f) => f.name === 'huge'), false);
  // JSON routes keep the global limit.
  await errorOf(await call('POST', `${base}/edit`, { path: '/a.txt', oldText: 'x'.repeat(2000), newText: 'y' }), 413, 'PAYLOAD_TOO_LARGE');
});

test('POST edit: exact replacement, the count when not unique, replaceAll', async () => {
  const { corral, sb, base, call, head } = setup();
  const one = fileEditResultSchema.parse(await (await call('POST', `${base}/edit`, { path: '/a.txt', oldText: 'alpha', newText: 'ALPHA' })).json());
  assert.equal(one.replacements, 1);
  const start = head();
  const amb = await errorOf(await call('POST', `${base}/edit`, { path: '/a.txt', oldText: 'beta', newText: 'b' }), 409, 'EDIT_AMBIGUOUS');
  assert.equal(amb.details.matches, 2);
  assert.match(amb.message, /2 times/);
  await errorOf(await call('POST', `${base}/edit`, { path: '/a.txt', oldText: 'b.ta', newText: 'b' }), 409, 'EDIT_NO_MATCH');
  assert.equal(head(), start);
  const all = fileEditResultSchema.parse(await (await call('POST', `${base}/edit`, { path: '/a.txt', oldText: 'beta', newText: 'B', replaceAll: true })).json());
  assert.equal(all.replacements, 2);
  assert.equal(dec.decode(corral.files.cat(sb.vault, '/a.txt')), 'ALPHA B B\n');
  await errorOf(await call('POST', `${base}/edit`, { path: '/a.txt', oldText: '', newText: 'x' }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', `${base}/edit`, { path: '/a.txt', oldText: 'A', newText: 1 }), 400, 'INVALID_ARGUMENT');
});

test('list, stat, mkdir, DELETE, move', async () => {
  const { corral, sb, base, call } = setup();
  assert.equal(fileMkdirResultSchema.parse(await (await call('POST', `${base}/mkdir`, { path: '/d/e', parents: true })).json()).path, '/d/e');
  await errorOf(await call('POST', `${base}/mkdir`, { path: '/d/e' }), 409, 'PATH_EXISTS');
  await errorOf(await call('POST', `${base}/mkdir`, { path: '/x/y' }), 404, 'PATH_NOT_FOUND');
  await call('PUT', `${base}${q('/d/e/f.txt')}`, enc.encode('f'));
  await call('PUT', `${base}${q('/d/.dot')}`, enc.encode('.'));

  const list = fileListSchema.parse(await (await call('GET', `${base}/list${q('/d')}`)).json());
  assert.deepEqual(list.entries.map((e) => e.path), ['/d/.dot', '/d/e']);
  const deep = fileListSchema.parse(await (await call('GET', `${base}/list?recursive=true`)).json());
  assert.deepEqual(deep.entries.map((e) => e.path), ['/a.txt', '/d', '/d/.dot', '/d/e', '/d/e/f.txt']);
  const cut = fileListSchema.parse(await (await call('GET', `${base}/list?recursive=true&limit=2`)).json());
  assert.equal(cut.entries.length, 2);
  assert.equal(cut.truncated, true);

  const st = fileInfoSchema.parse(await (await call('GET', `${base}/stat${q('/d/e/f.txt')}`)).json());
  assert.deepEqual([st.kind, st.size, st.name, st.mode], ['file', 1, 'f.txt', 0o644]);
  await errorOf(await call('GET', `${base}/stat${q('/d/nope')}`), 404, 'PATH_NOT_FOUND');

  const mv = fileMoveResultSchema.parse(await (await call('POST', `${base}/move`, { from: '/d/e/f.txt', to: '/g.txt' })).json());
  assert.equal(mv.to, '/g.txt');
  await errorOf(await call('POST', `${base}/move`, { from: '/g.txt', to: '/a.txt' }), 409, 'PATH_EXISTS');
  await call('POST', `${base}/move`, { from: '/g.txt', to: '/a.txt', overwrite: true });
  assert.equal(dec.decode(corral.files.cat(sb.vault, '/a.txt')), 'f');

  await errorOf(await call('DELETE', `${base}${q('/d')}`), 409, 'IS_A_DIRECTORY');
  const rm = fileRemoveResultSchema.parse(await (await call('DELETE', `${base}${q('/d', '&recursive=true')}`)).json());
  assert.equal(rm.removed, 1);
  await errorOf(await call('DELETE', `${base}${q('/', '&recursive=true')}`), 400, 'INVALID_PATH');
  await errorOf(await call('DELETE', `${base}${q('/d')}`), 404, 'PATH_NOT_FOUND');
});

test('download a directory as tar and upload it elsewhere; hostile and oversized tars change nothing', async () => {
  const { corral, app, sb, base, call, head } = setup({ maxTarBytes: 64 * 1024 });
  await call('PUT', `${base}${q('/t/a/b.txt', '&mode=0755')}`, enc.encode('bee'));
  await call('PUT', `${base}${q('/t/c.txt')}`, enc.encode('sea'));
  corral.files.symlink(sb.vault, 'c.txt', '/t/ln');

  const down = await call('GET', `${base}/download${q('/t')}`);
  assert.equal(down.status, 200);
  assert.equal(down.headers.get('content-type'), 'application/x-tar');
  const tar = new Uint8Array(await down.arrayBuffer());
  assert.ok(tar.length >= 1024);

  const up = await call('PUT', `${base}/upload${q('/copy')}`, tar, { 'content-type': 'application/x-tar' });
  assert.equal(up.status, 200);
  const r = fileUploadResultSchema.parse(await up.json());
  assert.deepEqual([r.path, r.files, r.dirs, r.symlinks, r.bytes], ['/copy', 2, 1, 1, 6]);
  assert.equal(dec.decode(corral.files.cat(sb.vault, '/copy/a/b.txt')), 'bee');
  assert.equal(corral.files.stat(sb.vault, '/copy/a/b.txt').mode, 0o755);
  assert.equal(corral.files.stat(sb.vault, '/copy/ln').target, 'c.txt');
  // Links pointing outside are stored as links (never followed) and listed.
  const out = fileUploadResultSchema.parse(await (await call('PUT', `${base}/upload${q('/o')}`, await tarOf([{ name: 'etc', type: 'symlink', linkname: '/etc' }]))).json());
  assert.deepEqual(out.outside, [{ path: '/o/etc', target: '/etc' }]);

  const start = head();
  await errorOf(await call('PUT', `${base}/upload${q('/in')}`, await tarOf([{ name: 'ok', body: 'x' }, { name: '/etc/cron.d/x', body: 'x' }])), 400, 'INVALID_PATH');
  await errorOf(await call('PUT', `${base}/upload${q('/in')}`, await tarOf([{ name: '../../x', body: 'x' }])), 400, 'INVALID_PATH');
  await errorOf(await call('PUT', `${base}/upload${q('/in')}`, await tarOf([{ name: 'l', type: 'symlink', linkname: '..' }, { name: 'l/x', body: 'x' }])), 400, 'INVALID_PATH');
  await errorOf(await call('PUT', `${base}/upload${q('/in')}`, enc.encode('not a tar at all, just some text that is long enough '.repeat(20))), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('PUT', `${base}/upload${q('/in')}`, await tarOf([{ name: 'big', body: 'x'.repeat(80 * 1024) }])), 413, 'PAYLOAD_TOO_LARGE');
  const big = await tarOf([{ name: 'big', body: 'x'.repeat(80 * 1024) }]);
  const chunked = new ReadableStream<Uint8Array>({
    start(c) {
      for (let i = 0; i < big.length; i += 8192) c.enqueue(big.subarray(i, i + 8192));
      c.close();
    },
  });
  await errorOf(await app.request(`${base}/upload${q('/in')}`, { method: 'PUT', body: chunked, duplex: 'half' } as RequestInit), 413, 'PAYLOAD_TOO_LARGE');
  await errorOf(await call('PUT', `${base}/upload${q('/a.txt')}`, tar), 409, 'NOT_A_DIRECTORY');
  assert.equal(head(), start);
  await errorOf(await call('GET', `${base}/download${q('/nope')}`), 404, 'PATH_NOT_FOUND');
});

/** Reads SSE events from a response body until `enough` says so; then cancels the stream. */
async function readEvents(res: Response, enough: (events: { event: string; data: unknown }[]) => boolean): Promise<{ events: { event: string; data: unknown }[]; comments: string[] }> {
  const reader = res.body!.getReader();
  const events: { event: string; data: unknown }[] = [];
  const comments: string[] = [];
  let text = '';
  while (!enough(events)) {
    const { done, value } = await reader.read();
    if (done) break;
    text += dec.decode(value, { stream: true });
    let end: number;
    while ((end = text.indexOf('\n\n')) >= 0) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      if (block.startsWith(':')) comments.push(block);
      else {
        const event = /^event: (.*)$/m.exec(block)?.[1] ?? 'message';
        const data = JSON.parse(/^data: (.*)$/m.exec(block)?.[1] ?? 'null') as unknown;
        events.push({ event, data });
      }
    }
  }
  await reader.cancel();
  return { events, comments };
}

test('watch: SSE events for files created, modified and deleted through other routes; ends when the client goes', async () => {
  const { corral, sb, base, call } = setup();
  await call('POST', `${base}/mkdir`, { path: '/w' });
  const res = await call('GET', `${base}/watch${q('/w')}`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reading = readEvents(res, (ev) => ev.filter((e) => e.event === 'change').length >= 3);
  const c1 = fileWriteResultSchema.parse(await (await call('PUT', `${base}${q('/w/f.txt')}`, enc.encode('1'))).json()).commit;
  await call('PUT', `${base}${q('/elsewhere.txt')}`, enc.encode('x'));
  await new Promise((r) => setTimeout(r, 60));
  const c2 = fileEditResultSchema.parse(await (await call('POST', `${base}/edit`, { path: '/w/f.txt', oldText: '1', newText: '2' })).json()).commit;
  const c3 = fileRemoveResultSchema.parse(await (await call('DELETE', `${base}${q('/w/f.txt')}`)).json()).commit;
  const { events } = await reading;
  const ready = fileWatchReadySchema.parse(events[0]!.data);
  assert.equal(events[0]!.event, 'ready');
  assert.equal(ready.path, '/w');
  assert.deepEqual(
    events.slice(1).map((e) => fileChangeEventSchema.parse(e.data)),
    [
      { path: '/w/f.txt', kind: 'created', commit: c1 },
      { path: '/w/f.txt', kind: 'modified', commit: c2 },
      { path: '/w/f.txt', kind: 'deleted', commit: c3 },
    ],
  );

  // The sandbox destroyed while watched: an error event, then the end of the stream.
  const res2 = await call('GET', `${base}/watch`);
  corral.sandboxes.destroy(sb.id);
  const { events: last } = await readEvents(res2, () => false);
  assert.deepEqual(last.map((e) => e.event), ['ready', 'error']);
  assert.equal(errorEnvelopeSchema.parse(last[1]!.data).error.code, 'SANDBOX_STATE');
});

test('watch sends keepalive comments', async () => {
  const corral = openCorral();
  const app = createApi({ corral, logger: quiet, version: '0.0.0', files: { keepaliveMs: 10, watchIntervalMs: 1000 } });
  const sb = corral.sandboxes.create({});
  const res = await app.request(`/v1/sandboxes/${sb.id}/files/watch`);
  const reader = res.body!.getReader();
  let text = '';
  while (!text.includes(': keepalive\n\n')) text += dec.decode((await reader.read()).value);
  await reader.cancel();
});

test('hostile input on every route: 4xx envelopes, nothing changed', async () => {
  const { corral, sb, base, call, head } = setup();
  const other = corral.sandboxes.create({ vault: 'src' });
  corral.sandboxes.destroy(other.id);
  const gone = `/v1/sandboxes/${other.id}/files`;
  const unknown = `/v1/sandboxes/${newId('sbx')}/files`;
  const start = head();
  const badPaths = ['../etc/passwd', '/a/../../etc', 'a\0b', 'x'.repeat(5000), `/${'y'.repeat(300)}`];

  type Case = { method: string; route: string; query?: (p: string) => string; body?: (p: string) => unknown };
  const routes: Case[] = [
    { method: 'GET', route: '', query: (p) => q(p) },
    { method: 'PUT', route: '', query: (p) => q(p), body: () => enc.encode('x') },
    { method: 'DELETE', route: '', query: (p) => q(p) },
    { method: 'GET', route: '/list', query: (p) => q(p) },
    { method: 'GET', route: '/stat', query: (p) => q(p) },
    { method: 'GET', route: '/download', query: (p) => q(p) },
    { method: 'PUT', route: '/upload', query: (p) => q(p), body: () => new Uint8Array(1024) },
    { method: 'GET', route: '/watch', query: (p) => q(p) },
    { method: 'POST', route: '/edit', body: (p) => ({ path: p, oldText: 'a', newText: 'b' }) },
    { method: 'POST', route: '/mkdir', body: (p) => ({ path: p }) },
    { method: 'POST', route: '/move', body: (p) => ({ from: '/a.txt', to: p }) },
  ];
  for (const r of routes) {
    const send = (prefix: string, p: string, extraQuery = '') => call(r.method, `${prefix}${r.route}${r.query ? r.query(p) : ''}${extraQuery}`, r.body?.(p));
    for (const p of badPaths) {
      const res = await send(base, p);
      assert.equal(res.status, 400, `${r.method} ${r.route} ${JSON.stringify(p.slice(0, 20))}`);
      assert.match(errorEnvelopeSchema.parse(await res.json()).error.code, /^INVALID_(PATH|ARGUMENT)$/);
    }
    await errorOf(await send(unknown, '/a.txt'), 404, 'SANDBOX_NOT_FOUND');
    await errorOf(await send(gone, '/a.txt'), 409, 'SANDBOX_STATE');
    await errorOf(await send('/v1/sandboxes/sbx_..%2F..%2Fetc/files', '/a.txt'), 400, 'INVALID_ARGUMENT');
    await errorOf(await send(base, '/a.txt', r.query ? '&bogus=1' : '?bogus=1'), 400, 'INVALID_ARGUMENT');
    if (r.query) await errorOf(await send(base, '/a.txt', '&path=/b'), 400, 'INVALID_ARGUMENT');
  }
  // Wrong types and unknown fields in bodies and queries.
  await errorOf(await call('POST', `${base}/edit`, { path: '/a.txt', oldText: 'a', newText: 'b', regex: true }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', `${base}/edit`, { path: ['/a.txt'], oldText: 'a', newText: 'b' }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', `${base}/edit`, '{"path": "/a.txt",'), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', `${base}/edit`, { path: '/a.txt', oldText: 'a', newText: 'b' }, { 'content-type': 'text/plain' }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', `${base}/mkdir`, { path: '/m', parents: 'yes' }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', `${base}/move`, { from: '/a.txt', to: '/b', overwrite: 1 }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('POST', `${base}/move`, { from: '/a.txt' }), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', `${base}${q('/a.txt', '&offset=-1')}`), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', `${base}${q('/a.txt', '&length=1e3')}`), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', `${base}/list?limit=0`), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', `${base}/list?limit=99999999`), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', `${base}/list?recursive=1`), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('PUT', `${base}${q('/a.txt', '&append=yes')}`, enc.encode('x')), 400, 'INVALID_ARGUMENT');
  await errorOf(await call('GET', base), 400, 'INVALID_PATH');
  await errorOf(await call('PATCH', `${base}${q('/a.txt')}`), 405, 'METHOD_NOT_ALLOWED');
  assert.equal(head(), start);
  assert.equal(dec.decode(corral.files.cat(sb.vault, '/a.txt')), 'alpha beta beta\n');
});

test('auth and provenance: the files scope, tenants see only their own sandboxes, commits name the API caller', async () => {
  const corral = openCorral();
  const app = createApi({ corral, logger: quiet, version: '0.0.0', auth: { keys: corral.keys } });
  const tcp = { transport: 'tcp' as const };
  const acme = corral.sandboxes.create({}, { tenant: 'acme' });
  const files = (k: string) => ({ authorization: `Bearer ${k}` });
  const writer = corral.keys.create({ tenant: 'acme', scopes: ['files'] });
  const execOnly = corral.keys.create({ tenant: 'acme', scopes: ['exec'] }).secret;
  const stranger = corral.keys.create({ tenant: 'other', scopes: ['admin'] }).secret;
  const url = `/v1/sandboxes/${acme.id}/files${q('/k.txt')}`;

  assert.equal((await app.request(url, { method: 'PUT', body: 'x' }, tcp)).status, 401);
  await errorOf(await app.request(url, { method: 'PUT', body: 'x', headers: files(execOnly) }, tcp), 403, 'PERMISSION_DENIED');
  await errorOf(await app.request(url, { method: 'PUT', body: 'x', headers: files(stranger) }, tcp), 404, 'SANDBOX_NOT_FOUND');
  await errorOf(await app.request(`/v1/sandboxes/${acme.id}/files/watch`, { headers: files(stranger) }, tcp), 404, 'SANDBOX_NOT_FOUND');
  const ok = await app.request(url, { method: 'PUT', body: 'x', headers: files(writer.secret) }, tcp);
  assert.equal(ok.status, 200);
  const commit = corral.store.getCommit(fileWriteResultSchema.parse(await ok.json()).commit!);
  assert.equal(commit.origin, 'api');
  assert.equal(commit.actor, `api:key:${writer.id}`);
  const audit = corral.store.db.get<{ actor: string; details: string }>("SELECT actor, details FROM audit WHERE op = 'file.write' ORDER BY rowid DESC LIMIT 1")!;
  assert.equal(audit.actor, `api:key:${writer.id}`);
  assert.equal(JSON.parse(audit.details).origin, 'api');
  // Over the socket: the owner, who sees every tenant's sandbox.
  const own = await app.request(url, { method: 'PUT', body: 'y' }, { transport: 'unix' as const });
  assert.equal(corral.store.getCommit(fileWriteResultSchema.parse(await own.json()).commit!).actor, 'api:owner');
});

test('the OpenAPI document describes every file route with its query and bodies', async () => {
  const { app } = setup();
  const doc = (await (await app.request('/openapi.json')).json()) as { paths: Record<string, Record<string, any>>; components: { schemas: Record<string, unknown> } };
  const files = doc.paths['/v1/sandboxes/{id}/files']!;
  assert.deepEqual(Object.keys(files).sort(), ['delete', 'get', 'put']);
  assert.deepEqual(files.put.parameters.map((p: { name: string }) => p.name), ['id', 'path', 'mode', 'append', 'parents']);
  assert.ok(files.put.requestBody.content['application/octet-stream']);
  assert.ok(files.get.responses['200'].content['application/octet-stream']);
  for (const sub of ['edit', 'mkdir', 'move']) assert.ok(doc.paths[`/v1/sandboxes/{id}/files/${sub}`]!.post.requestBody.content['application/json']);
  for (const sub of ['list', 'stat', 'download', 'watch']) assert.ok(doc.paths[`/v1/sandboxes/{id}/files/${sub}`]!.get);
  assert.ok(doc.paths['/v1/sandboxes/{id}/files/upload']!.put.requestBody.content['application/x-tar']);
  for (const name of ['FileInfo', 'FileList', 'FileWriteResult', 'FileEdit', 'FileEditResult', 'FileUploadResult', 'FileChangeEvent']) assert.ok(doc.components.schemas[name], name);
});

function httpCall(socketPath: string, method: string, path: string, body?: Uint8Array): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, agent: false, headers: body ? { 'content-type': 'application/octet-stream', 'content-length': String(body.length) } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('a real daemon socket: PUT and GET of a 5 MiB file', async () => {
  const { app, sb, base } = setup({ bodyLimit: 64 * 1024, maxFileBytes: 16 * 1024 * 1024 });
  const socketPath = join(tempDir(), 'corral.sock');
  const server = await startDaemonServer({ fetch: app.fetch, socketPath });
  try {
    const data = new Uint8Array(5 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 12)) & 0xff;
    const put = await httpCall(socketPath, 'PUT', `${base}${q('/big.bin')}`, data);
    assert.equal(put.status, 200, put.body.toString());
    assert.equal(fileWriteResultSchema.parse(JSON.parse(put.body.toString())).size, data.length);
    const got = await httpCall(socketPath, 'GET', `${base}${q('/big.bin')}`);
    assert.equal(got.status, 200);
    assert.equal(got.headers['x-corral-size'], String(data.length));
    assert.ok(Buffer.from(data).equals(got.body));
    const range = await httpCall(socketPath, 'GET', `${base}${q('/big.bin', `&offset=${4 * 1024 * 1024}&length=10`)}`);
    assert.ok(Buffer.from(data.subarray(4 * 1024 * 1024, 4 * 1024 * 1024 + 10)).equals(range.body));
    assert.equal(sb.state, 'ready');

    // Too big, streamed without a Content-Length: 413, and the daemon keeps serving.
    const tooBig = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ socketPath, path: `${base}${q('/huge')}`, method: 'PUT', agent: false, headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (b: Buffer) => chunks.push(b));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      });
      req.on('error', reject);
      const chunk = Buffer.alloc(1024 * 1024);
      let sent = 0;
      const pump = () => {
        while (sent < 80 && !req.destroyed) {
          sent++;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    }).catch((e: Error) => ({ status: -1, body: e.message }));
    if (tooBig.status !== -1) assert.equal(tooBig.status, 413, tooBig.body);
    assert.equal((await httpCall(socketPath, 'GET', `${base}${q('/huge')}`)).status, 404);

    // A client that goes away in the middle of a download leaves the daemon serving.
    await new Promise<void>((resolve, reject) => {
      const req = request({ socketPath, path: `${base}/download`, method: 'GET', agent: false }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => undefined);
      req.on('close', () => resolve());
      setTimeout(() => reject(new Error('no data')), 5000).unref();
      req.end();
    });
    const again = await httpCall(socketPath, 'GET', `${base}/stat${q('/big.bin')}`);
    assert.equal(again.status, 200);
  } finally {
    await server.close();
  }
});
