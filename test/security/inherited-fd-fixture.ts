// A Corral process that holds an inheritable descriptor, as one started by a careless parent
// (a shell with `9>file`, an agent harness, a service manager) does: the test gives this process
// fd 9, and it runs one namespace exec and prints the result as JSON on stdout.
// Usage: node inherited-fd-fixture.ts CHECKOUT PYTHON_CODE
import { NamespaceBackend } from '../../src/runtime/namespace-backend.ts';

const [checkout, code] = process.argv.slice(2);
if (!checkout || code === undefined) throw new Error('usage: inherited-fd-fixture.ts CHECKOUT PYTHON_CODE');
const sandbox = await new NamespaceBackend().create({ checkout, readonly: false, network: false, limits: {}, bestEffort: false });
try {
  const r = await sandbox.exec({ argv: ['python3', '-c', code], cwd: '/', env: { PATH: '/usr/bin:/bin', HOME: '/workspace' }, timeoutMs: 10_000, graceMs: 500, outputCap: 1 << 16, limits: {} });
  r.upper?.release();
  process.stdout.write(JSON.stringify({ exitCode: r.exitCode, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8') }));
} finally {
  await sandbox.destroy();
}
