// A second Corral process for vault-locks.test.ts: takes one lease on a home's vault lock, prints
// one JSON line when it holds it, and releases it when its stdin ends (or dies holding it).
// Usage: node vault-locks-child.ts <home> shared|exclusive|dirty <key>
import { CorralStore } from '../../src/store/corral-store.ts';
import { VaultLocks } from '../../src/services/vault-locks.ts';

const [home, mode, key] = process.argv.slice(2);
if (!home || !mode || !key) throw new Error('usage: vault-locks-child.ts <home> shared|exclusive|dirty <key>');
const store = new CorralStore(home);
const locks = new VaultLocks(store);
process.stdout.write(JSON.stringify({ event: 'waiting', pid: process.pid }) + '\n');
const lease = mode === 'shared' ? { release: await locks.shared(key), recovered: false } : await locks.exclusive(key, { dirty: mode === 'dirty' });
process.stdout.write(JSON.stringify({ event: 'granted', recovered: lease.recovered }) + '\n');
process.stdin.resume();
process.stdin.on('end', () => {
  lease.release();
  store.close();
  process.stdout.write(JSON.stringify({ event: 'released' }) + '\n');
});
