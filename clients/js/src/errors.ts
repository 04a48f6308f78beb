/**
 * Errors of the keymesh client. Every failure is a {@link KeymeshError}
 * whose `code` is the API's stable error code (`not_granted`,
 * `decryption_failed`, …) or one of the client's own codes
 * (`unreachable`, `invalid_response`, `invalid_context`, `unsupported_protocol`).
 */

/** The API's stable error codes (docs/openapi.yaml, node/apiv1). */
export const ApiCodes = {
  invalidRequest: 'invalid_request',
  invalidCiphertext: 'invalid_ciphertext',
  decryptionFailed: 'decryption_failed',
  unauthenticated: 'unauthenticated',
  forbidden: 'forbidden',
  notGranted: 'not_granted',
  /** A node started with --fips refuses Ethereum wallet authentication (403). */
  fipsUnsupported: 'fips_unsupported',
  notFound: 'not_found',
  conflict: 'conflict',
  keyNotUsable: 'key_not_usable',
  keyDestroyed: 'key_destroyed',
  tooLarge: 'too_large',
  unavailable: 'unavailable',
  internal: 'internal',
  invalidCreator: 'invalid_creator',
} as const;

/** Codes the client raises itself, before or without an API answer. */
export const ClientCodes = {
  /** The node could not be reached (fetch failed). */
  unreachable: 'unreachable',
  /** The node answered something that is not the API's JSON. */
  invalidResponse: 'invalid_response',
  /** A context's chain_id or contract has no canonical form. */
  invalidContext: 'invalid_context',
  /** The node speaks another version of the wallet-signature protocol. */
  unsupportedProtocol: 'unsupported_protocol',
} as const;

export type ApiCode = (typeof ApiCodes)[keyof typeof ApiCodes];
export type ClientCode = (typeof ClientCodes)[keyof typeof ClientCodes];
/** An error code: the API's, the client's, or one a newer node added. */
export type ErrorCode = ApiCode | ClientCode | (string & {});

/**
 * KeymeshError is every error of the client. `status` is the HTTP status
 * (0 when the client refused before sending, or the node was unreachable);
 * `code` is stable, so branch on it, never on `message`.
 */
export class KeymeshError extends Error {
  readonly status: number;
  readonly code: ErrorCode;

  constructor(status: number, code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KeymeshError';
    this.status = status;
    this.code = code;
  }
}

/** One item of a batch: its value, or why it was refused. */
export type ItemResult<T> = { ok: true; value: T } | { ok: false; error: KeymeshError };

/**
 * BatchError is a batch with refused items. Its `code` and `status` are
 * those of the first refused item; `results` holds every item in request
 * order and `failures` the refused ones with their index.
 */
export class BatchError<T = unknown> extends KeymeshError {
  readonly results: ItemResult<T>[];
  readonly failures: { index: number; error: KeymeshError }[];

  constructor(results: ItemResult<T>[]) {
    const failures: { index: number; error: KeymeshError }[] = [];
    results.forEach((r, index) => {
      if (!r.ok) failures.push({ index, error: r.error });
    });
    const first = failures[0]?.error;
    super(
      first?.status ?? 0,
      first?.code ?? ApiCodes.internal,
      `${failures.length} of ${results.length} batch items refused` +
        (first ? `; item ${failures[0]!.index}: ${first.code}: ${first.message}` : ''),
    );
    this.name = 'KeymeshBatchError';
    this.results = results;
    this.failures = failures;
  }
}

/** isCode reports whether err is a KeymeshError with that code. */
export function isCode(err: unknown, code: ErrorCode): boolean {
  return err instanceof KeymeshError && err.code === code;
}
