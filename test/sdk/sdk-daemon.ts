// A real daemon for the SDK's tests: createApi over a fresh Corral home, served by startDaemonServer
// on a temp Unix socket and on 127.0.0.1:0 with API keys (and the exec attach WebSocket), torn down
// (execs cancelled) when the file ends.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after } from 'node:test';
import { createApi } from '../../src/api/api-app.ts';
import { createExecSocketServer } from '../../src/api/exec-socket.ts';
import { startDaemonServer, type DaemonServer } from '../../src/daemon/daemon-server.ts';
import type { KeyScope } from '../../src/protocol/key-scopes.ts';
import { Corral as CorralService } from '../../src/services/corral.ts';
import { connect, type Corral } from '../../src/sdk/node.ts';
import { testCaller } from '../helpers.ts';

const quiet = { info() {}, warn() {}, error() {} };

export interface TestDaemon {
  home: string;
  socket: string;
  /** http://127.0.0.1:<port> */
  url: string;
  service: CorralService;
  server: DaemonServer;
  /** A client over the Unix socket (the owner). */
  owner: Corral;
  /** A new API key's secret. */
  key(scopes: KeyScope[], tenant?: string): string;
}

export async function startTestDaemon(): Promise<TestDaemon> {
  const home = mkdtempSync(join(process.platform === 'linux' ? '/dev/shm' : '/tmp', 'corral-sdk-'));
  const service = new CorralService({ home, caller: testCaller });
  const app = createApi({ corral: service, logger: quiet, version: '0.0.1', auth: { keys: service.keys }, files: { watchIntervalMs: 20 } });
  const socket = join(home, 'corral.sock');
  const sockets = createExecSocketServer({ execs: service.execs, keys: service.keys, logger: quiet });
  const server = await startDaemonServer({ fetch: app.fetch, socketPath: socket, tcp: { port: 0 }, drainMs: 2000, upgrade: sockets.handleUpgrade });
  const owner = connect({ socket });
  after(async () => {
    owner.close();
    sockets.close();
    await service.execs.cancelAll();
    await server.close();
    service.close();
    rmSync(home, { recursive: true, force: true });
  });
  return {
    home,
    socket,
    url: `http://127.0.0.1:${server.tcp!.port}`,
    service,
    server,
    owner,
    key: (scopes, tenant = 'acme') => service.keys.create({ tenant, scopes }).secret,
  };
}

/** A loopback port nothing listens on (bound, then released). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}
