// Writing a tar stream to any Writable, waiting whenever it is full, so an export of any size
// holds about one file in memory at a time.
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import type { Header } from 'tar-stream';
import { hostError } from '../runtime/host-files.ts';

/** Adds one entry (with its data, for a file); resolves once the entry is packed. */
export type AddTarEntry = (header: Partial<Header> & { name: string }, data?: Uint8Array) => Promise<void>;

/**
 * Packs the entries `fill` adds into a tar stream on `output`, then ends `output` when `end`. A
 * CorralError from `fill` passes through; any other failure, of `output` included, is a HOST_IO_ERROR.
 */
export async function writeTar(output: Writable | NodeJS.WritableStream, end: boolean, fill: (add: AddTarEntry) => Promise<void>): Promise<void> {
  // Loaded on first use: most commands never touch a tar, and every command loads this module.
  const { pack: tarPack } = await import('tar-stream');
  const out = output as Writable;
  const pack = tarPack();
  let failure: Error | undefined;
  const onError = (e: Error): void => {
    failure ??= e;
    pack.destroy(e);
  };
  out.on('error', onError);
  // Copies the packed bytes to `out`, waiting whenever `out` is full.
  const pump = (async () => {
    for await (const chunk of pack) {
      if (!out.write(chunk)) await once(out, 'drain');
    }
  })();
  pump.catch(() => undefined);

  const add: AddTarEntry = (header, data) =>
    new Promise((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(failure ?? err) : resolve());
      // The entry stream errors too when the output fails; the error reaches `cb`, so it needs no
      // listener of its own, but without one Node would crash on it.
      const entry = data ? pack.entry(header, Buffer.from(data.buffer, data.byteOffset, data.byteLength), cb) : pack.entry(header, cb);
      entry.on('error', () => undefined);
    });

  try {
    await fill(add);
    pack.finalize();
    await pump;
    if (failure) throw failure;
    if (end) {
      out.end();
      if (!out.writableFinished) await once(out, 'finish');
    }
  } catch (e) {
    pack.destroy();
    throw hostError(e, 'tar output');
  } finally {
    out.removeListener('error', onError);
  }
}
