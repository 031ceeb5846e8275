// The SDK for Node: everything of the browser-safe root, plus connect() over the daemon's Unix socket
// (the default: $CORRAL_HOME/corral.sock) or a URL, with WebSockets (terminals) from the `ws` package.
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Corral, type ConnectOptions } from './corral-client.ts';
import { CorralApiError } from './sdk-errors.ts';
import { unixSocketFetch } from './node-transport.ts';
import { nodeWebSocketFactory } from './node-websocket.ts';

export * from './index.ts';
export { unixSocketFetch } from './node-transport.ts';
export { nodeWebSocketFactory } from './node-websocket.ts';

export interface NodeConnectOptions extends Omit<ConnectOptions, 'url'> {
  /** The daemon's Unix socket (default: $CORRAL_HOME/corral.sock, with CORRAL_HOME defaulting to ~/.corral). Exclusive with url. */
  socket?: string;
  /** The daemon's TCP URL instead of the socket, e.g. http://127.0.0.1:8420 (needs apiKey) (default: none, use the socket). */
  url?: string;
}

/** The socket a daemon of this user listens on by default: `$CORRAL_HOME/corral.sock` (CORRAL_HOME defaults to ~/.corral). */
export function defaultSocketPath(env: Record<string, string | undefined> = process.env): string {
  return join(env.CORRAL_HOME || join(homedir(), '.corral'), 'corral.sock');
}

/**
 * Connects to a Corral daemon: over its Unix socket by default (as the machine's owner: no key
 * needed), or over TCP with `url` (and an apiKey). Does no I/O; the first call reports an
 * unreachable daemon as UNAVAILABLE.
 */
export function connect(options: NodeConnectOptions = {}): Corral {
  const { socket, url, ...rest } = options;
  if (socket !== undefined && url !== undefined) throw new CorralApiError('INVALID_ARGUMENT', 'give socket or url, not both', {});
  // Terminals go through `ws`: it reaches the Unix socket, and over TCP it sends the key as a header.
  if (url !== undefined) return Corral.connect({ webSocket: nodeWebSocketFactory(), ...rest, url });
  if (rest.fetch) throw new CorralApiError('INVALID_ARGUMENT', 'a custom fetch goes with url, not with the Unix socket', {});
  const path = socket ?? defaultSocketPath();
  // The host only fills the Host header: the socket decides where requests go.
  return Corral.connect({ webSocket: nodeWebSocketFactory(path), ...rest, url: 'http://corral', fetch: unixSocketFetch(path) });
}
