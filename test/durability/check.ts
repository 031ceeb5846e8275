// Shared checks of the durability and gc tests: every commit reachable from a vault head or a
// checkpoint exists, and its tree is complete (every row, shards included, and every blob).
// Tree rows are read from the database itself, never through the ObjectStore's cache, so a row
// that gc deleted cannot hide behind a cached copy.
import assert from 'node:assert/strict';
import type { Corral } from '../../src/services/corral.ts';
import { decodeTree, EMPTY_TREE, encodeTree } from '../../src/store/object-store.ts';

export function assertHomeComplete(c: Corral): { commits: number; trees: number; blobs: number } {
  const db = c.store.db;
  const seeds = [
    ...db.all<{ id: string; what: string }>("SELECT head AS id, 'head of ' || name AS what FROM vaults"),
    ...db.all<{ id: string; what: string }>("SELECT commit_id AS id, 'checkpoint ' || name AS what FROM checkpoints"),
  ];
  const commits = new Set<string>();
  const trees = new Set<string>();
  const blobs = new Set<string>();
  const treeRow = db.stmt('SELECT entries FROM trees WHERE hash = ?');
  const commitRow = db.stmt('SELECT parent, tree FROM commits WHERE id = ?');
  const hasBlob = db.stmt('SELECT 1 AS x FROM blobs WHERE hash = ?');
  const walk = (hash: string, where: string): void => {
    if (trees.has(hash)) return;
    trees.add(hash);
    const text = hash === EMPTY_TREE ? encodeTree([]) : (treeRow.get(hash) as { entries: string } | undefined)?.entries;
    assert.ok(text !== undefined, `tree ${hash} (${where}) is missing`);
    if (text.startsWith('{')) {
      // An index of shards: every shard is a row of its own.
      for (const [shard] of (JSON.parse(text) as { c: [string][] }).c) walk(shard, `${where} (shard)`);
      return;
    }
    for (const e of decodeTree(text)) {
      if (e.kind === 'dir') walk(e.hash, `${where}/${e.name}`);
      else if (!blobs.has(e.hash)) {
        assert.ok(hasBlob.get(e.hash), `blob of ${where}/${e.name} is missing`);
        blobs.add(e.hash);
      }
    }
  };
  for (const seed of seeds) {
    for (let id: string | null = seed.id; id && !commits.has(id); ) {
      const commit = commitRow.get(id) as { parent: string | null; tree: string } | undefined;
      assert.ok(commit, `commit ${id} reachable from ${seed.what} is missing`);
      commits.add(id);
      walk(commit.tree, `${seed.what} @ ${id.slice(0, 12)}`);
      id = commit.parent;
    }
  }
  return { commits: commits.size, trees: trees.size, blobs: blobs.size };
}
