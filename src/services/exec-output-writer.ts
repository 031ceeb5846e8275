// The worker thread of ExecOutputStore: writes batches of exec output rows on a database connection
// of its own, so a fast stream's SQLite work (about 2 ms per MiB) runs beside the daemon's event
// loop instead of in it. Each batch is one transaction. After it, state[0] says the last batch done
// (written or failed), the posting thread (which may be waiting in Atomics.wait) is woken, and a
// `done` message tells it the writer is free for the next batch; state[1] becomes 1 once a batch
// failed, and the error is posted on the `errors` port (read synchronously there).
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { toCorralError } from '../protocol/errors.ts';
import { Database } from '../store/database.ts';

/** The new rows of some execs (their data at start..start+size of `bytes`), then the bound applied per stream (rows wholly before keepFrom go). */
export interface OutputBatch {
  seq: number;
  bytes: ArrayBuffer;
  execs: {
    execId: string;
    rows: { code: 1 | 2; offset: number; atUs: number; start: number; size: number }[];
    trims: { code: 1 | 2; keepFrom: number }[];
  }[];
}

export type WriterMessage = OutputBatch | { close: true };

export interface WriterData {
  path: string;
  state: Int32Array;
  errors: MessagePort;
}

if (parentPort) {
  const port = parentPort;
  const { path, state, errors } = workerData as WriterData;
  const db = new Database(path);

  const write = (batch: OutputBatch): void => {
    try {
      db.transaction(() => {
        for (const e of batch.execs) {
          for (const r of e.rows) db.run('INSERT INTO exec_output(exec_id, stream, offset, at_us, size, data) VALUES (?, ?, ?, ?, ?, ?)', e.execId, r.code, r.offset, r.atUs, r.size, new Uint8Array(batch.bytes, r.start, r.size));
          for (const t of e.trims) db.run('DELETE FROM exec_output WHERE exec_id = ? AND stream = ? AND offset < ? AND offset + size <= ?', e.execId, t.code, t.keepFrom, t.keepFrom);
        }
      });
    } catch (e) {
      const err = toCorralError(e);
      errors.postMessage({ code: err.code, message: err.message });
      Atomics.store(state, 1, 1);
    }
    Atomics.store(state, 0, batch.seq);
    Atomics.notify(state, 0);
    port.postMessage({ done: batch.seq });
  };

  port.on('message', (m: WriterMessage) => {
    if ('close' in m) {
      db.close();
      port.close();
    } else write(m);
  });
}
