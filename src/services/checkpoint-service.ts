// Checkpoints: named pointers to commits. Save, restore and delete are pointer writes, O(1) in
// the number of files; a restore is a new commit on top of the head, so it can be undone.
import { CorralError } from '../protocol/errors.ts';
import { validateCheckpointName } from '../protocol/paths.ts';
import type { Caller, Checkpoint, Commit, CorralStore, Vault } from '../store/corral-store.ts';
import type { ServiceDeps } from './corral.ts';

export interface CheckpointInfo extends Checkpoint {
  vault: string;
  files: number;
  bytes: number;
  commitMessage: string;
}

/** `cp-2026-11-23T18-43-16-123Z`: sortable, readable, valid as a name. */
export function defaultCheckpointName(now: number): string {
  return 'cp-' + new Date(now).toISOString().replaceAll(':', '-').replace('.', '-');
}

export class CheckpointService {
  private readonly store: CorralStore;
  private readonly caller: Caller;

  constructor({ store, caller }: ServiceDeps) {
    this.store = store;
    this.caller = caller;
  }

  save(vault: string, name?: string, message = ''): CheckpointInfo {
    if (name !== undefined) validateCheckpointName(name);
    return this.store.write(this.caller, vault, { op: 'checkpoint.save', target: name ?? null, details: { message } }, () => {
      const v = this.store.getVault(vault);
      let chosen = name;
      if (chosen === undefined) {
        // A default name never collides: a second save in the same millisecond gets a suffix.
        const base = defaultCheckpointName(this.store.now());
        chosen = base;
        for (let i = 2; this.store.findCheckpoint(v, chosen); i++) chosen = `${base}-${i}`;
      } else if (this.store.findCheckpoint(v, chosen)) {
        throw new CorralError('CHECKPOINT_EXISTS', `checkpoint '${chosen}' already exists in '${vault}': pick another name or delete it first`, { checkpoint: chosen });
      }
      this.store.db.run('INSERT INTO checkpoints(vault_id, name, commit_id, message, created_at) VALUES (?, ?, ?, ?, ?)', v.id, chosen, v.head, message, this.store.now());
      return this.info(vault, chosen);
    }, (cp) => ({ checkpoint: cp.name, commit: cp.commit }));
  }

  list(vault: string): Checkpoint[] {
    return this.store.listCheckpoints(this.store.getVault(vault));
  }

  private get(v: Vault, name: string): Checkpoint {
    const cp = this.store.findCheckpoint(v, name);
    if (!cp) throw new CorralError('CHECKPOINT_NOT_FOUND', `no checkpoint '${name}' in vault '${v.name}': see 'corral checkpoint list'`, { checkpoint: name, vault: v.name });
    return cp;
  }

  info(vault: string, name: string): CheckpointInfo {
    const v = this.store.getVault(vault);
    const cp = this.get(v, name);
    const c = this.store.getCommit(cp.commit);
    return { ...cp, vault: v.name, files: c.files, bytes: c.size, commitMessage: c.message };
  }

  /**
   * Makes the head's files those of the checkpoint (or any ref: a commit id, HEAD~N), as a new
   * commit whose parent is the state before: `previous` brings that back.
   */
  restore(vault: string, ref: string): { commit: Commit; previous: string; restored: string } {
    return this.store.write(this.caller, vault, { op: 'checkpoint.restore', target: ref }, () => {
      const v = this.store.getVault(vault);
      const target = this.store.resolveRef(v, ref);
      const head = this.store.getCommit(v.head);
      const commit = this.store.advanceHead(this.caller, v, head, { hash: target.tree, size: target.size, files: target.files }, { message: `restore ${ref}`, origin: 'restore', allowEmpty: true })!;
      return { commit, previous: head.id, restored: target.id };
    }, (r) => ({ commit: r.commit.id, previous: r.previous, restored: r.restored }));
  }

  delete(vault: string, name: string): Checkpoint {
    return this.store.write(this.caller, vault, { op: 'checkpoint.delete', target: name }, () => {
      const v = this.store.getVault(vault);
      const cp = this.get(v, name);
      this.store.db.run('DELETE FROM checkpoints WHERE vault_id = ? AND name = ?', v.id, name);
      return cp;
    });
  }
}
