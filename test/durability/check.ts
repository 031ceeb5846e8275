// Shared checks of the durability tests: every commit reachable from a vault head or a
// checkpoint exists, and its tree is complete (every subtree and every blob is present).
import assert from 'node:assert/strict';
import type { Corral } from '../../src/services/corral.ts';
import { EMPTY_TREE } from '../../src/store/object-store.ts';

export function assertHomeComplete(c: Corral): { commits: number; trees: number; blobs: number } {
  const db = c.store.db;
  const seeds = [
    ...db.all<{ id: string; what: string }>("SELECT head AS id, 'head of ' || name AS what FROM vaults"),
    ...db.all<{ id: string; what: string }>("SELECT commit_id AS id, 'checkpoint ' || name AS what FROM checkpoints"),
  ];
  const commits = new Set<string>();
  const trees = new Set<string>();
  const blobs = new Set<string>();
  const hasTree = db.stmt('SELECT 1 AS x FROM trees WHERE hash = ?');
  const walk = (hash: string, where: string): void => {
    if (trees.has(hash)) return;
    assert.ok(hash === EMPTY_TREE || hasTree.get(hash), `tree ${hash} (${where}) is missing`);
    trees.add(hash);
    for (const e of c.store.objects.getTree(hash)) {
      if (e.kind === 'dir') walk(e.hash, `${where}/${e.name}`);
      else if (!blobs.has(e.hash)) {
        assert.ok(c.store.objects.hasBlob(e.hash), `blob of ${where}/${e.name} is missing`);
        blobs.add(e.hash);
      }
    }
  };
  for (const seed of seeds) {
    for (let id: string | null = seed.id; id && !commits.has(id); ) {
      const commit = c.store.findCommit(id);
      assert.ok(commit, `commit ${id} reachable from ${seed.what} is missing`);
      commits.add(id);
      walk(commit.tree, `${seed.what} @ ${id.slice(0, 12)}`);
      id = commit.parent;
    }
  }
  return { commits: commits.size, trees: trees.size, blobs: blobs.size };
}
