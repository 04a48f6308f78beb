import { getBytes } from 'ethers';
import { base64url } from './base64.js';
import { ApiCodes, KeymeshError } from './errors.js';

/** The prefix of an envelope's text form. */
export const ENVELOPE_PREFIX = 'km1:';

/**
 * envelopeToBytes returns the binary form of an envelope (`km1:` and
 * unpadded base64url), for a Solidity `bytes` argument: 3/4 the size of the
 * text, so cheaper calldata. It throws a KeymeshError `invalid_ciphertext`
 * for anything else.
 */
export function envelopeToBytes(text: string): Uint8Array {
  if (typeof text !== 'string' || !text.startsWith(ENVELOPE_PREFIX)) {
    throw new KeymeshError(0, ApiCodes.invalidCiphertext, `not an envelope: the text form starts with "${ENVELOPE_PREFIX}"`);
  }
  const b = base64url.decode(text.slice(ENVELOPE_PREFIX.length));
  if (b === null || b.length === 0) {
    throw new KeymeshError(0, ApiCodes.invalidCiphertext, 'not an envelope: the text form is not unpadded base64url');
  }
  return b;
}

/**
 * envelopeFromBytes returns the text form of an envelope's binary form, as
 * read back from a `bytes` event field or return value: a Uint8Array, or
 * the 0x hex string ethers returns for `bytes`. The node checks the
 * envelope itself when it decrypts.
 */
export function envelopeFromBytes(b: Uint8Array | string): string {
  let bytes: Uint8Array;
  try {
    bytes = getBytes(b);
  } catch (cause) {
    throw new KeymeshError(0, ApiCodes.invalidCiphertext, 'not an envelope: expected bytes or 0x hex', { cause });
  }
  if (bytes.length === 0) throw new KeymeshError(0, ApiCodes.invalidCiphertext, 'not an envelope: empty bytes');
  return ENVELOPE_PREFIX + base64url.encode(bytes);
}
