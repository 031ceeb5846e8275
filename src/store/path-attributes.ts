// Tags and metadata hang off paths of a vault's head; these keep them with their files when
// files move or go away. Call inside the transaction of the change.
import type { Database } from './database.ts';

const TABLES = ['tags', 'path_meta'] as const;

/**
 * `path` and everything below it, as SQL on `column`: the paths that start with `path/` sort
 * between `path/` and `path0` ('0' follows '/'), a range the primary key's index serves.
 */
export function pathAndBelow(path: string, column = 'path'): { where: string; params: string[] } {
  if (path === '/') return { where: '1', params: [] };
  return { where: `(${column} = ? OR (${column} >= ? AND ${column} < ?))`, params: [path, path + '/', path + '0'] };
}

/** 1-based position of what follows `prefix` in a string, for SQLite's substr (which counts characters, not UTF-16 units). */
function after(prefix: string): number {
  return [...prefix].length + 1;
}


export function movePathAttributes(db: Database, vaultId: number, from: string, to: string): void {
  const { where, params } = pathAndBelow(from);
  for (const table of TABLES) {
    // Attributes already at the destination give way to the moved ones.
    const dest = pathAndBelow(to);
    db.raw.prepare(`DELETE FROM ${table} WHERE vault_id = ? AND ${dest.where}`).run(vaultId, ...dest.params);
    db.raw.prepare(`UPDATE ${table} SET path = ? || substr(path, ?) WHERE vault_id = ? AND ${where}`).run(to, after(from), vaultId, ...params);
  }
}

export function copyPathAttributes(db: Database, vaultId: number, from: string, to: string): void {
  const { where, params } = pathAndBelow(from);
  db.raw.prepare(`INSERT OR REPLACE INTO tags(vault_id, path, tag) SELECT vault_id, ? || substr(path, ?), tag FROM tags WHERE vault_id = ? AND ${where}`).run(to, after(from), vaultId, ...params);
  db.raw
    .prepare(`INSERT OR REPLACE INTO path_meta(vault_id, path, key, value) SELECT vault_id, ? || substr(path, ?), key, value FROM path_meta WHERE vault_id = ? AND ${where}`)
    .run(to, after(from), vaultId, ...params);
}

export function dropPathAttributes(db: Database, vaultId: number, path: string): void {
  const { where, params } = pathAndBelow(path);
  for (const table of TABLES) db.raw.prepare(`DELETE FROM ${table} WHERE vault_id = ? AND ${where}`).run(vaultId, ...params);
}

/** Copies every tag and metadata entry of one vault to another (a fork). */
export function copyVaultAttributes(db: Database, fromVault: number, toVault: number): void {
  db.run('INSERT INTO tags(vault_id, path, tag) SELECT ?, path, tag FROM tags WHERE vault_id = ?', toVault, fromVault);
  db.run('INSERT INTO path_meta(vault_id, path, key, value) SELECT ?, path, key, value FROM path_meta WHERE vault_id = ?', toVault, fromVault);
}
