// Vaults: create, list, select, inspect, rename, delete, fork, quotas.
import { CorralError } from '../protocol/errors.ts';
import { validateVaultName } from '../protocol/paths.ts';
import type { Caller, CorralStore, Quota, Vault } from '../store/corral-store.ts';
import { copyVaultAttributes } from '../store/path-attributes.ts';
import type { ServiceDeps } from './corral.ts';
import { countVaultCommits } from './reachability.ts';
import { dropVaultIndex } from './search-service.ts';

const CURRENT = 'current_vault';

export interface VaultInfo {
  name: string;
  head: string;
  createdAt: number;
  parent: string | null;
  forkedFrom: string | null;
  files: number;
  bytes: number;
  /** Commits reachable from the head and the checkpoints (as `stats` counts them). */
  commits: number;
  checkpoints: number;
  current: boolean;
  quota: Quota;
  lastChange: { message: string; origin: string; createdAt: number };
}

export class VaultService {
  private readonly store: CorralStore;
  private readonly caller: Caller;

  constructor({ store, caller }: ServiceDeps) {
    this.store = store;
    this.caller = caller;
  }

  create(name: string): Vault {
    validateVaultName(name);
    return this.store.write(this.caller, name, { op: 'vault.create', target: name }, () => this.store.insertVault(this.caller, name));
  }

  list(): (Vault & { current: boolean; files: number; bytes: number })[] {
    const current = this.store.getSetting(CURRENT);
    return this.store.listVaults().map((v) => {
      const head = this.store.getCommit(v.head);
      return { ...v, current: v.name === current, files: head.files, bytes: head.size };
    });
  }

  /** The selected vault: `explicit` (a --vault flag), else $CORRAL_VAULT, else the one chosen with `vault use`. */
  current(explicit?: string): string {
    const name = explicit ?? (process.env.CORRAL_VAULT || undefined) ?? this.store.getSetting(CURRENT);
    if (!name) throw new CorralError('NO_VAULT_SELECTED', "no vault selected: run 'corral vault create NAME' or 'corral vault use NAME' (or pass --vault NAME)");
    return this.store.getVault(name).name;
  }

  use(name: string): Vault {
    const v = this.store.getVault(name);
    this.store.write(this.caller, name, { op: 'vault.use', target: name }, () => this.store.setSetting(CURRENT, name));
    return v;
  }

  info(name: string): VaultInfo {
    const v = this.store.getVault(name);
    const head = this.store.getCommit(v.head);
    return {
      name: v.name,
      head: v.head,
      createdAt: v.createdAt,
      parent: v.parent,
      forkedFrom: v.forkedFrom,
      files: head.files,
      bytes: head.size,
      commits: countVaultCommits(this.store, v),
      checkpoints: this.store.listCheckpoints(v).length,
      current: this.store.getSetting(CURRENT) === v.name,
      quota: v.quota,
      lastChange: { message: head.message, origin: head.origin, createdAt: head.createdAt },
    };
  }


  rename(from: string, to: string): Vault {
    validateVaultName(to);
    return this.store.write(this.caller, from, { op: 'vault.rename', target: from, details: { to } }, () => {
      const v = this.store.getVault(from);
      if (this.store.findVault(to)) throw new CorralError('VAULT_EXISTS', `a vault named '${to}' already exists: pick another name`, { vault: to });
      this.store.db.run('UPDATE vaults SET name = ? WHERE id = ?', to, v.id);
      this.store.db.run('UPDATE vaults SET parent_name = ? WHERE parent_name = ?', to, from);
      if (this.store.getSetting(CURRENT) === from) this.store.setSetting(CURRENT, to);
      return this.store.getVault(to);
    });
  }

  /** Deletes a vault, its checkpoints, tags, metadata and search index. Its objects go at the next `gc`. */
  delete(name: string, confirmed: boolean): Vault {
    const v = this.store.getVault(name);
    if (!confirmed) throw new CorralError('CONFIRMATION_REQUIRED', `deleting vault '${name}' removes it and its checkpoints: pass --yes to confirm`, { vault: name });
    return this.store.write(this.caller, name, { op: 'vault.delete', target: name, details: { head: v.head } }, () => {
      this.store.db.run('DELETE FROM vaults WHERE id = ?', v.id);
      dropVaultIndex(this.store.db, v.id);
      if (this.store.getSetting(CURRENT) === name) this.store.setSetting(CURRENT, null);
      return v;
    });
  }

  /** A new vault whose head is the source's head: no file is copied. Tags and metadata are. */
  fork(source: string, name: string, options: { use?: boolean } = {}): Vault {
    validateVaultName(name);
    return this.store.write(this.caller, name, { op: 'vault.fork', target: name, details: { source } }, () => {
      const src = this.store.getVault(source);
      const v = this.store.insertVault(this.caller, name, { head: src.head, parent: src.name, forkedFrom: src.head, quota: src.quota });
      copyVaultAttributes(this.store.db, src.id, v.id);
      if (options.use) this.store.setSetting(CURRENT, name);
      return v;
    });
  }

  setQuota(name: string, quota: Partial<Quota>): Quota {
    for (const [k, v] of Object.entries(quota))
      if (v !== null && v !== undefined && (!Number.isSafeInteger(v) || v < 0))
        throw new CorralError('INVALID_ARGUMENT', `quota ${k} must be a whole number of at least 0, got ${String(v)}`, { [k]: v });
    return this.store.write(this.caller, name, { op: 'quota.set', target: name, details: { quota } }, () => {
      const v = this.store.getVault(name);
      const next = { ...v.quota, ...quota };
      this.store.db.run('UPDATE vaults SET quota_bytes = ?, quota_files = ?, quota_file_size = ? WHERE id = ?', next.maxBytes, next.maxFiles, next.maxFileSize, v.id);
      return next;
    });
  }

  quota(name: string): Quota & { bytes: number; files: number } {
    const v = this.store.getVault(name);
    const head = this.store.getCommit(v.head);
    return { ...v.quota, bytes: head.size, files: head.files };
  }
}
