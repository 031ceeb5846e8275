// Who is at the other end of a Unix socket connection. Node exposes no SO_PEERCRED, so the exec
// supervisor binary asks the kernel for it (`corral-run --peer-cred 3`, the connection passed as
// its fd 3): a static binary, about a millisecond per connection (keep-alive clients pay it once).
import { spawn } from 'node:child_process';
import type { Socket } from 'node:net';
import { supervisorPath } from '../runtime/supervisor.ts';

export interface PeerCredentials {
  uid: number;
  gid: number;
  pid: number;
}

export function peerCredentials(socket: Socket): Promise<PeerCredentials> {
  return new Promise((resolve, reject) => {
    const child = spawn(supervisorPath(), ['--peer-cred', '3'], { stdio: ['ignore', 'pipe', 'pipe', socket] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      const m = /^(\d+) (\d+) (-?\d+)\n$/.exec(out);
      if (code !== 0 || !m) return reject(new Error(`cannot tell who connected: ${err.trim() || `corral-run exited ${code}`}`));
      resolve({ uid: Number(m[1]), gid: Number(m[2]), pid: Number(m[3]) });
    });
  });
}
