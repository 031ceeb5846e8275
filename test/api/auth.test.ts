import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { createApi } from '../../src/api/api-app.ts';
import { actorOf, requireScope, scopeOf } from '../../src/api/auth-middleware.ts';
import { isLoopback, startDaemonServer } from '../../src/daemon/daemon-server.ts';
import { isCorralError } from '../../src/protocol/errors.ts';
import type { KeyScope } from '../../src/protocol/key-scopes.ts';
import type { Corral } from '../../src/services/corral.ts';
import { openCorral, tempDir } from '../helpers.ts';
import { quiet } from './api-test-helpers.ts';

const backends = { probeAll: async () => [], select: async () => ({ backend: { health: async () => ({ ok: true, warnings: [] }) } }) };
const tcpEnv = { transport: 'tcp' as const };
const unixEnv = { transport: 'unix' as const };

/** An app with key auth and a test route that needs sandboxes:write and echoes who called. */
function authApp(corral: Corral, withAuth = true) {
  const app = createApi({ corral: { exec: { backends } }, logger: quiet, version: '0.0.1', bodyLimit: 1024, ...(withAuth ? { auth: { keys: corral.keys } } : {}) });
  app.get('/t/write', (c) => {
    requireScope(c, 'sandboxes:write');
    return c.json({ scope: scopeOf(c), actor: actorOf(c) });
  });
  return app;
}

function key(corral: Corral, scopes: KeyScope[], tenant = 'acme'): string {
  return corral.keys.create({ tenant, scopes }).secret;
}

const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });

async function expect401(res: Response, invalid: boolean): Promise<void> {
  assert.equal(res.status, 401);
  const challenge = res.headers.get('www-authenticate') ?? '';
  assert.match(challenge, /^Bearer realm="corral"/);
  assert.equal(challenge.includes('error="invalid_token"'), invalid, challenge);
  const body = (await res.json()) as { error: { code: string; message: string; details: object; requestId: string } };
  assert.equal(body.error.code, 'UNAUTHENTICATED');
  assert.match(body.error.message, /Authorization: Bearer/);
  assert.deepEqual(body.error.details, {});
  assert.equal(body.error.requestId, res.headers.get('x-request-id'));
}

test('over TCP: no key is 401 with a Bearer challenge on every route but ping and the OpenAPI document', async () => {
  const corral = openCorral();
  const app = authApp(corral);
  for (const path of ['/v1/system', '/v1/health', '/v1/capabilities', '/t/write', '/v1/nope', '/v1/ping/', '/openapi.json/x']) await expect401(await app.request(path, {}, tcpEnv), false);
  // Refused before the body is read or the route is matched: no 413, no 404, no 405.
  await expect401(await app.request('/v1/sandboxes', { method: 'POST', headers: { 'content-type': 'application/json' }, body: 'x'.repeat(4096) }, tcpEnv), false);
  await expect401(await app.request('/v1/ping', { method: 'POST' }, tcpEnv), false);
  for (const path of ['/v1/ping', '/openapi.json']) {
    assert.equal((await app.request(path, {}, tcpEnv)).status, 200, path);
    assert.equal((await app.request(path, { method: 'HEAD' }, tcpEnv)).status, 200, `HEAD ${path}`);
  }
  // A caller that names no transport is treated as TCP: fail closed.
  await expect401(await app.request('/v1/system'), false);
});

test('over TCP: wrong, malformed and revoked keys are 401; a key of the wrong scope is 403 naming the scope', async () => {
  const corral = openCorral();
  const app = authApp(corral);
  const reader = key(corral, ['sandboxes:read', 'exec']);
  const writer = key(corral, ['sandboxes:write']);
  const gone = corral.keys.create({ tenant: 'acme', scopes: ['admin'] });
  corral.keys.revoke(gone.id);

  const bad = [`Bearer crl_${'A'.repeat(43)}`, `Bearer ${writer}x`, 'Bearer', 'Bearer ', `Basic ${Buffer.from(`x:${writer}`).toString('base64')}`, writer, `Bearer ${writer} extra`, `Bearer ${gone.secret}`, `Token ${writer}`];
  for (const authorization of bad) await expect401(await app.request('/v1/system', { headers: { authorization } }, tcpEnv), true);
  // A key sent to ping is checked too, so a client can test its key cheaply.
  await expect401(await app.request('/v1/ping', { headers: { authorization: `Bearer ${gone.secret}` } }, tcpEnv), true);
  assert.equal((await app.request('/v1/ping', { headers: bearer(reader) }, tcpEnv)).status, 200);

  // Any valid key reads the system routes.
  // (health is 503 here: the stub has no backend.)
  for (const path of ['/v1/system', '/v1/health', '/v1/capabilities']) assert.ok([200, 503].includes((await app.request(path, { headers: bearer(reader) }, tcpEnv)).status), path);

  const denied = await app.request('/t/write', { headers: bearer(reader) }, tcpEnv);
  assert.equal(denied.status, 403);
  const body = (await denied.json()) as { error: { code: string; message: string; details: { scope: string; granted: string[] } } };
  assert.equal(body.error.code, 'PERMISSION_DENIED');
  assert.match(body.error.message, /sandboxes:write/);
  assert.deepEqual(body.error.details, { scope: 'sandboxes:write', granted: ['sandboxes:read', 'exec'] });

  const ok = await app.request('/t/write', { headers: { authorization: `bearer  ${writer}` } }, tcpEnv);
  assert.equal(ok.status, 200);
  const who = (await ok.json()) as { scope: { tenant: string }; actor: string };
  assert.deepEqual(who.scope, { tenant: 'acme' });
  assert.match(who.actor, /^key:key_/);
  const admin = await app.request('/t/write', { headers: bearer(key(corral, ['admin'], 'beta')) }, tcpEnv);
  assert.deepEqual(((await admin.json()) as { scope: object }).scope, { tenant: 'beta' }, 'admin implies the scope, within its tenant');

  // Revoking takes effect on the next request.
  corral.keys.revoke(corral.keys.list({ tenant: 'acme' }).find((k) => k.scopes.includes('sandboxes:write'))!.id);
  await expect401(await app.request('/t/write', { headers: bearer(writer) }, tcpEnv), true);
});

test('the Unix socket is the owner (a key is not needed, and a bad one is ignored); an app without auth is all owner', async () => {
  const corral = openCorral();
  const app = authApp(corral);
  for (const headers of [{}, { authorization: 'Bearer nonsense' }]) {
    const res = await app.request('/t/write', { headers }, unixEnv);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { scope: { tenant: null }, actor: 'owner' });
  }
  const open = authApp(corral, false);
  assert.deepEqual(await (await open.request('/t/write')).json(), { scope: { tenant: null }, actor: 'owner' });
  assert.equal((await open.request('/v1/system', {}, tcpEnv)).status, 200);
});

function overSocket(socketPath: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ socketPath, path, headers, agent: false } satisfies RequestOptions, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('a real daemon: the Unix socket is the owner, TCP needs the key in the header', async () => {
  const dir = tempDir();
  const corral = openCorral(join(dir, 'home'));
  const secret = key(corral, ['sandboxes:write']);
  const server = await startDaemonServer({ fetch: authApp(corral).fetch, socketPath: join(dir, 's.sock'), tcp: { port: 0 } });
  try {
    assert.equal(server.tcp?.tls, false);
    const base = `http://127.0.0.1:${server.tcp!.port}`;
    const denied = await fetch(`${base}/v1/system`);
    assert.equal(denied.status, 401);
    assert.match(denied.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.equal(((await denied.json()) as { error: { code: string } }).error.code, 'UNAUTHENTICATED');
    assert.equal((await fetch(`${base}/v1/ping`).then((r) => r.status)), 200);
    const ok = await fetch(`${base}/t/write`, { headers: bearer(secret) });
    assert.equal(ok.status, 200);
    assert.deepEqual(((await ok.json()) as { scope: object }).scope, { tenant: 'acme' });
    assert.equal((await fetch(`${base}/v1/system`, { headers: bearer(secret) })).status, 200);

    const owner = await overSocket(server.socketPath, '/t/write');
    assert.deepEqual(owner, { status: 200, body: { scope: { tenant: null }, actor: 'owner' } });
  } finally {
    await server.close();
  }
});

/** A self-signed certificate for 127.0.0.1 and localhost, made by openssl now. */
function selfSigned(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  return { cert, key: keyFile };
}

function overTls(port: number, path: string, ca: Buffer, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, headers, ca, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }));
    });
    req.on('error', reject);
    req.end();
  });
}

let haveOpenssl = true;
try {
  execFileSync('openssl', ['version'], { stdio: 'ignore' });
} catch {
  haveOpenssl = false;
}

test('TLS: TCP served as HTTPS with the given certificate; plain HTTP gets no answer', { skip: haveOpenssl ? false : 'openssl is not installed' }, async () => {
  const dir = tempDir();
  const corral = openCorral(join(dir, 'home'));
  const secret = key(corral, ['sandboxes:write']);
  const tls = selfSigned(dir, 'a');
  const server = await startDaemonServer({ fetch: authApp(corral).fetch, socketPath: join(dir, 's.sock'), tcp: { port: 0 }, tls });
  try {
    assert.deepEqual(server.tcp, { host: '127.0.0.1', port: server.tcp!.port, tls: true });
    const ca = readFileSync(tls.cert);
    assert.equal((await overTls(server.tcp!.port, '/v1/system', ca)).status, 401);
    const ok = await overTls(server.tcp!.port, '/t/write', ca, bearer(secret));
    assert.deepEqual(ok, { status: 200, body: { scope: { tenant: 'acme' }, actor: ok.body.actor } });
    // A client that does not trust the certificate is refused by its own TLS check.
    await assert.rejects(overTls(server.tcp!.port, '/v1/ping', readFileSync(selfSigned(dir, 'other').cert)));
    await assert.rejects(fetch(`http://127.0.0.1:${server.tcp!.port}/v1/ping`, { signal: AbortSignal.timeout(5000) }));
    // The Unix socket stays plain and the owner's.
    assert.equal((await overSocket(server.socketPath, '/t/write')).status, 200);
  } finally {
    await server.close();
  }
});

test('TLS and binding: unusable certificates, TLS without TCP and non-loopback without TLS are refused before anything is bound', { skip: haveOpenssl ? false : 'openssl is not installed' }, async () => {
  const dir = tempDir();
  const socks = join(dir, 'socks');
  execFileSync('mkdir', [socks]);
  const a = selfSigned(dir, 'a');
  const b = selfSigned(dir, 'b');
  const garbage = join(dir, 'garbage.pem');
  writeFileSync(garbage, '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n');
  const fetchNothing = () => new Response('');
  const start = (extra: object) => startDaemonServer({ fetch: fetchNothing, socketPath: join(socks, 's.sock'), ...extra });
  const refused = (e: unknown) => isCorralError(e, 'INVALID_ARGUMENT');
  await assert.rejects(start({ tcp: { port: 0 }, tls: { cert: join(dir, 'missing.crt'), key: a.key } }), (e) => refused(e) && /missing\.crt/.test((e as Error).message));
  await assert.rejects(start({ tcp: { port: 0 }, tls: { cert: a.cert, key: b.key } }), refused, 'a key that is not the certificate\'s');
  await assert.rejects(start({ tcp: { port: 0 }, tls: { cert: garbage, key: a.key } }), refused);
  await assert.rejects(start({ tls: a }), refused, 'TLS needs TCP');
  for (const host of ['0.0.0.0', '::', '10.0.0.1', '::ffff:10.0.0.1']) await assert.rejects(start({ tcp: { port: 0, host } }), (e) => refused(e) && /--tls-cert/.test((e as Error).message), host);
  assert.deepEqual(readdirSync(socks), [], 'no socket was left behind');

  // With TLS, or the explicit opt-in, any address is allowed.
  for (const extra of [{ tls: a }, { allowNonLoopback: true }]) {
    const server = await start({ tcp: { port: 0, host: '0.0.0.0' }, ...extra });
    assert.equal(server.tcp?.host, '0.0.0.0');
    await server.close();
  }
});

test('isLoopback', () => {
  for (const h of ['127.0.0.1', '127.1.2.3', '::1', 'localhost', '::ffff:127.0.0.1']) assert.equal(isLoopback(h), true, h);
  for (const h of ['0.0.0.0', '::', '10.0.0.1', '::ffff:10.0.0.1', '127.example.com', '1127.0.0.1', '']) assert.equal(isLoopback(h), false, h);
});
