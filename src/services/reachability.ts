// What a set of refs keeps alive: the commits reachable from them (following parents, into the
// parent vault for forks), their trees (every row, shards included) and blobs. One definition
// serves gc's mark, the commit counts of `stats` and `vault info`, and what a bundle carries.
import { CorralError, isCorralError } from '../protocol/errors.ts';
import { REACH, type CorralStore, type Vault } from '../store/corral-store.ts';
import type { Database } from '../store/database.ts';
import type { Entry, ObjectStore, TreeNode } from '../store/object-store.ts';

export interface ReachedCommit {
  id: string;
  /** Null when the commit is named (as a seed or a parent) but missing from the database. */
  tree: string | null;
}

/** Every commit reachable from `seeds` following parents, each once, with its tree. */
export function reachableCommits(db: Database, seeds: readonly string[]): ReachedCommit[] {
  return db.all<ReachedCommit>(`${REACH} SELECT r.id AS id, c.tree AS tree FROM reach r LEFT JOIN commits c ON c.id = r.id`, JSON.stringify(seeds));
}

export function countReachableCommits(db: Database, seeds: readonly string[]): number {
  return db.get<{ n: number }>(`${REACH} SELECT count(*) AS n FROM reach`, JSON.stringify(seeds))!.n;
}

/** The commits a vault's history holds: reachable from its head and its checkpoints. */
export function countVaultCommits(store: CorralStore, v: Vault): number {
  return countReachableCommits(store.db, store.historyRefs(v));
}

export interface TreeVisitor {
  /** Each tree row newly marked: a directory's own row and, when it is sharded, every shard. */
  row?(hash: string, node: TreeNode): void;
  /** Each file or symlink entry of a newly marked row (a blob named twice comes twice). */
  blob(hash: string, entry: Entry): void;
  /** The error to throw when a reachable row is missing (default: the store's STORAGE_CORRUPT). */
  missing?(hash: string, cause: CorralError): Error;
}

/**
 * Marks every tree row below `roots` in `marked`, visiting each row once. Rows already in
 * `marked` are not walked again, so several calls share the work. Iterative: no depth limit.
 */
export function markTrees(objects: ObjectStore, roots: Iterable<string>, marked: Set<string>, visit: TreeVisitor): void {
  const stack: string[] = [];
  const push = (h: string): void => {
    if (!marked.has(h)) {
      marked.add(h);
      stack.push(h);
    }
  };
  for (const h of roots) push(h);
  while (stack.length > 0) {
    const hash = stack.pop()!;
    let node: TreeNode;
    try {
      node = objects.getNode(hash);
    } catch (e) {
      if (visit.missing && isCorralError(e, 'STORAGE_CORRUPT')) throw visit.missing(hash, e);
      throw e;
    }
    visit.row?.(hash, node);
    if (node.kind === 'index') for (const shard of node.children) push(shard.hash);
    else
      for (const e of node.entries) {
        if (e.kind === 'dir') push(e.hash);
        else visit.blob(e.hash, e);
      }
  }
}
