import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolve } from 'node:path';
import { daemonConfigSchema, daemonEnvVars, daemonRunArgs, parseDaemonConfig } from '../../src/daemon/daemon-config.ts';
import { isCorralError } from '../../src/protocol/errors.ts';

test('defaults: the socket, pid file and log in the home, no TCP, loopback host, 10 s drain, info', () => {
  assert.deepEqual(parseDaemonConfig({ home: '/h' }), {
    home: '/h',
    socket: '/h/corral.sock',
    port: null,
    host: '127.0.0.1',
    tlsCert: null,
    tlsKey: null,
    insecureBind: false,
    drainMs: 10_000,
    logLevel: 'info',
    pidFile: '/h/daemon.pid',
    logFile: '/h/daemon.log',
  });
});

test('a flag wins over its CORRAL_* variable, which wins over the default; paths become absolute', () => {
  const env = {
    CORRAL_DAEMON_PORT: '8420',
    CORRAL_DAEMON_HOST: '::1',
    CORRAL_DAEMON_DRAIN_MS: '500',
    CORRAL_LOG_LEVEL: 'debug',
    CORRAL_DAEMON_SOCKET: 'rel.sock',
    CORRAL_DAEMON_INSECURE_BIND: 'yes',
    CORRAL_DAEMON_LOG_FILE: '/var/log/c.log',
    CORRAL_DAEMON_TLS_CERT: '',
  };
  const fromEnv = parseDaemonConfig({ home: 'h', env });
  assert.equal(fromEnv.home, resolve('h'));
  assert.equal(fromEnv.port, 8420);
  assert.equal(fromEnv.host, '::1');
  assert.equal(fromEnv.drainMs, 500);
  assert.equal(fromEnv.logLevel, 'debug');
  assert.equal(fromEnv.socket, resolve('rel.sock'));
  assert.equal(fromEnv.insecureBind, true);
  assert.equal(fromEnv.logFile, '/var/log/c.log');
  assert.equal(fromEnv.tlsCert, null, 'an empty variable is unset');
  const fromFlags = parseDaemonConfig({ home: '/h', env, flags: { port: '0', host: 'localhost', drainMs: '0', logLevel: 'warn', socket: '/s.sock', insecureBind: true, tlsCert: 'c.pem', tlsKey: '/k.pem', pidFile: 'p.pid' } });
  assert.deepEqual(
    { port: fromFlags.port, host: fromFlags.host, drainMs: fromFlags.drainMs, logLevel: fromFlags.logLevel, socket: fromFlags.socket, tlsCert: fromFlags.tlsCert, tlsKey: fromFlags.tlsKey, pidFile: fromFlags.pidFile },
    { port: 0, host: 'localhost', drainMs: 0, logLevel: 'warn', socket: '/s.sock', tlsCert: resolve('c.pem'), tlsKey: '/k.pem', pidFile: resolve('p.pid') },
  );
  assert.ok(daemonEnvVars.includes('CORRAL_DAEMON_PORT') && daemonEnvVars.includes('CORRAL_LOG_LEVEL'));
});

test('errors name the flag or the variable to fix', () => {
  const fails = (input: Parameters<typeof parseDaemonConfig>[0], pattern: RegExp) =>
    assert.throws(() => parseDaemonConfig(input), (e) => isCorralError(e, 'INVALID_ARGUMENT') && pattern.test(e.message), String(pattern));
  fails({ home: '/h', flags: { port: 'abc' } }, /^--port must be a whole number/);
  fails({ home: '/h', env: { CORRAL_DAEMON_PORT: '-1' } }, /^CORRAL_DAEMON_PORT must be a whole number/);
  fails({ home: '/h', flags: { port: '70000' } }, /^--port: /);
  fails({ home: '/h', env: { CORRAL_DAEMON_DRAIN_MS: '99999999' } }, /^CORRAL_DAEMON_DRAIN_MS: /);
  fails({ home: '/h', flags: { logLevel: 'loud' } }, /^--log-level: /);
  fails({ home: '/h', env: { CORRAL_DAEMON_INSECURE_BIND: 'maybe' } }, /^CORRAL_DAEMON_INSECURE_BIND must be true or false/);
  fails({ home: '/h', flags: { port: '1', tlsCert: '/c.pem' } }, /both a certificate and its key/);
  fails({ home: '/h', flags: { host: '0.0.0.0' } }, /^--host applies to TCP: give a TCP port too/);
  fails({ home: '/h', env: { CORRAL_DAEMON_TLS_KEY: '/k', CORRAL_DAEMON_TLS_CERT: '/c' } }, /^CORRAL_DAEMON_TLS_CERT applies to TCP/);
  fails({ home: '/h', flags: { insecureBind: true } }, /^--insecure-bind applies to TCP/);
  for (const host of ['a b', 'evil.com/x', '-x', 'a..b', '']) fails({ home: '/h', flags: { port: '1', host } }, /--host/);
});

test('daemonRunArgs hands the same configuration to the background daemon', () => {
  const cases = [
    parseDaemonConfig({ home: '/h' }),
    parseDaemonConfig({ home: '/h', flags: { port: '0', host: '10.0.0.1', insecureBind: true, drainMs: '5', logLevel: 'trace', socket: '/x.sock', pidFile: '/x.pid' } }),
    parseDaemonConfig({ home: '/h', flags: { port: '8443', host: '0.0.0.0', tlsCert: '/c.pem', tlsKey: '/k.pem' } }),
  ];
  for (const config of cases) {
    const args = daemonRunArgs(config);
    const flags: Record<string, string | boolean> = {};
    for (let i = 0; i < args.length; i++) {
      const name = args[i]!.slice(2).replace(/-([a-z])/g, (_, ch: string) => ch.toUpperCase());
      if (args[i + 1] === undefined || args[i + 1]!.startsWith('--')) flags[name] = true;
      else flags[name] = args[++i]!;
    }
    assert.deepEqual(parseDaemonConfig({ home: '/h', flags, env: { CORRAL_LOG_LEVEL: 'fatal', CORRAL_DAEMON_DRAIN_MS: '1' } }), config);
  }
  // Every field is described (the schema is the configuration's documentation).
  for (const [key, field] of Object.entries(daemonConfigSchema.shape)) assert.ok(field.description && field.description.length > 10, key);
});
