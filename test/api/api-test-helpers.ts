// What the API tests share: a logger that says nothing, and the check of an error answer.
import assert from 'node:assert/strict';
import { errorEnvelopeSchema } from '../../src/protocol/api-schemas.ts';

export const quiet = { info() {}, warn() {}, error() {} };

/** Asserts `res` is the error envelope with this status and code; returns its error. */
export async function errorOf(res: Response, status: number, code: string) {
  assert.equal(res.status, status, `expected ${status} ${code}`);
  const body = errorEnvelopeSchema.parse(await res.json());
  assert.equal(body.error.code, code, body.error.message);
  return body.error;
}
