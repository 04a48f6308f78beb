import type { Signer } from 'ethers';
import { base64 } from './base64.js';
import { canonicalChainId, canonicalContext, type Context, type ContextInput } from './context.js';
import { ApiCodes, BatchError, ClientCodes, KeymeshError, type ItemResult } from './errors.js';
import { checkDomain, envelopeDigest, newNonce, signRequest, type EthAuth, type EthDomain, type KeymeshRequest } from './wallet.js';

/** A plaintext: bytes, or a string (encoded as UTF-8). */
export type Plaintext = Uint8Array | string;

/** One item of an encrypt batch. */
export interface EncryptItem {
  plaintext: Plaintext;
  context?: ContextInput;
}

/** One item of a decrypt batch. */
export interface DecryptItem {
  ciphertext: string;
  context?: ContextInput;
}

/** Options of a batch call. */
export interface BatchOptions {
  /**
   * false (the default): the call resolves to the values only if every item
   * succeeded, and rejects with a {@link BatchError} otherwise.
   * true: it resolves to one {@link ItemResult} per item, so that some may
   * fail — but it still rejects with a BatchError when every item failed:
   * a batch of refusals is never a success.
   */
  partial?: boolean;
}

/** How a wallet signs a decrypt request. */
export interface WalletOptions {
  /** `eip712` (default; eth_signTypedData_v4) or `eip191` (personal_sign). */
  scheme?: 'eip712' | 'eip191';
  /**
   * The chain the request is for. Default: the items' context chain_id
   * (they must agree), else the signer's provider's network.
   */
  chainId?: bigint | number | string;
  /** Seconds until the signature expires: 1 to the node's max (600); default 120. */
  ttlSeconds?: number;
}

/** Options of a KeymeshClient. */
export interface ClientOptions {
  /** The node's base URL, e.g. "http://127.0.0.1:8420". */
  url: string;
  /** A bearer token (kmt_…) for encrypt and token decrypts; wallet decrypts need none. */
  token?: string;
  /** A fetch implementation (default: globalThis.fetch). */
  fetch?: typeof fetch;
}

const utf8 = new TextEncoder();
const DEFAULT_TTL = 120;

function toBytes(p: Plaintext): Uint8Array {
  return typeof p === 'string' ? utf8.encode(p) : p;
}

interface ApiResult {
  plaintext?: string;
  ciphertext?: string;
  error?: { code: string; message: string };
}

/**
 * KeymeshClient talks to one keymesh node's REST API. Encrypt and token
 * decrypts send the bearer token; wallet decrypts (`walletDecrypt…`) are
 * signed by an ethers Signer and need no token. Contexts are canonicalised
 * (`chain_id` decimal, `contract` lower case) before they are sent, as the
 * node does too. Every failure is a {@link KeymeshError} with the API's
 * stable code.
 */
export class KeymeshClient {
  readonly url: string;
  readonly #token: string | undefined;
  readonly #fetch: typeof fetch;
  #domain: Promise<EthDomain> | undefined;

  constructor(opts: ClientOptions) {
    if (!opts || typeof opts.url !== 'string' || !/^https?:\/\//.test(opts.url)) {
      throw new KeymeshError(0, ApiCodes.invalidRequest, 'KeymeshClient needs a url such as "http://127.0.0.1:8420"');
    }
    this.url = opts.url.replace(/\/+$/, '');
    this.#token = opts.token;
    const f = opts.fetch ?? globalThis.fetch;
    if (typeof f !== 'function') throw new KeymeshError(0, ApiCodes.invalidRequest, 'no fetch: pass one in the options');
    this.#fetch = f.bind(globalThis);
  }

  async #call<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (token) headers['Authorization'] = `Bearer ${token}`;
    let res: Response;
    try {
      res = await this.#fetch(this.url + path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
    } catch (cause) {
      throw new KeymeshError(0, ClientCodes.unreachable, `${method} ${path}: the node is unreachable`, { cause });
    }
    const text = await res.text();
    let json: any;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const e = json?.error;
      if (e && typeof e.code === 'string') throw new KeymeshError(res.status, e.code, String(e.message ?? e.code));
      throw new KeymeshError(res.status, ClientCodes.invalidResponse, `${method} ${path}: HTTP ${res.status} without an API error body`);
    }
    if (json === undefined || typeof json !== 'object') {
      throw new KeymeshError(res.status, ClientCodes.invalidResponse, `${method} ${path}: the answer is not a JSON object`);
    }
    return json as T;
  }

  // ---- encrypt ----

  /**
   * encrypt seals plaintext under key, bound to context, and returns the
   * envelope's text form (`km1:…`; {@link envelopeToBytes} gives the
   * binary form for a `bytes` argument). The token's party needs an
   * encrypt grant on key.
   */
  async encrypt(key: string, plaintext: Plaintext, context?: ContextInput): Promise<string> {
    const r = await this.#call<{ ciphertext?: string }>(
      'POST',
      '/v1/encrypt',
      { key, plaintext: base64.encode(toBytes(plaintext)), ...ctxField(context) },
      this.#token,
    );
    if (typeof r.ciphertext !== 'string') throw new KeymeshError(200, ClientCodes.invalidResponse, 'encrypt: no ciphertext in the answer');
    return r.ciphertext;
  }

  /** encryptBatch seals many plaintexts under one key, in one request. See {@link BatchOptions}. */
  encryptBatch(key: string, items: EncryptItem[], opts?: { partial?: false }): Promise<string[]>;
  encryptBatch(key: string, items: EncryptItem[], opts: { partial: true }): Promise<ItemResult<string>[]>;
  async encryptBatch(key: string, items: EncryptItem[], opts?: BatchOptions): Promise<string[] | ItemResult<string>[]> {
    checkBatch(items);
    const batch = items.map((it) => ({ plaintext: base64.encode(toBytes(it.plaintext)), ...ctxField(it.context) }));
    const r = await this.#call<{ batch?: ApiResult[] }>('POST', '/v1/encrypt', { key, batch }, this.#token);
    return settle(r.batch, items.length, (x) => {
      if (typeof x.ciphertext !== 'string') throw new KeymeshError(200, ClientCodes.invalidResponse, 'encrypt: item without ciphertext or error');
      return x.ciphertext;
    }, opts);
  }

  // ---- decrypt with the token ----

  /** decrypt opens an envelope for the token's party and returns the plaintext bytes. */
  async decrypt(ciphertext: string, context?: ContextInput): Promise<Uint8Array> {
    const r = await this.#call<ApiResult>('POST', '/v1/decrypt', { ciphertext, ...ctxField(context) }, this.#token);
    return plaintextOf(r);
  }

  /** decryptBatch opens many envelopes for the token's party, in one request. See {@link BatchOptions}. */
  decryptBatch(items: DecryptItem[], opts?: { partial?: false }): Promise<Uint8Array[]>;
  decryptBatch(items: DecryptItem[], opts: { partial: true }): Promise<ItemResult<Uint8Array>[]>;
  async decryptBatch(items: DecryptItem[], opts?: BatchOptions): Promise<Uint8Array[] | ItemResult<Uint8Array>[]> {
    checkBatch(items);
    const r = await this.#call<{ batch?: ApiResult[] }>('POST', '/v1/decrypt', { batch: items.map(decryptItem) }, this.#token);
    return settle(r.batch, items.length, plaintextOf, opts);
  }

  // ---- decrypt as a wallet ----

  /** domain returns (and caches) what wallets sign for this node: GET /v1/eth/domain. */
  domain(): Promise<EthDomain> {
    if (!this.#domain) {
      this.#domain = this.#call<EthDomain>('GET', '/v1/eth/domain').then((d) => {
        checkDomain(d);
        return d;
      });
      this.#domain.catch(() => (this.#domain = undefined));
    }
    return this.#domain;
  }

  /**
   * signDecrypt has signer sign a decrypt request over exactly items, for
   * this node, and returns the `auth` object. Use it where the wallet is
   * (a browser) and send the auth with the items to a back end, which
   * forwards both with {@link decryptWithAuth}. A signature is single-use
   * and valid at this node only.
   */
  async signDecrypt(signer: Signer, items: DecryptItem[], opts: WalletOptions = {}): Promise<EthAuth> {
    checkBatch(items);
    const d = await this.domain();
    const chainId = await resolveChainId(signer, items, opts.chainId);
    const ttl = opts.ttlSeconds ?? DEFAULT_TTL;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > d.max_ttl_seconds) {
      throw new KeymeshError(0, ApiCodes.invalidRequest, `ttlSeconds must be 1..${d.max_ttl_seconds}`);
    }
    const req: KeymeshRequest = {
      networkId: d.network_id,
      chainId,
      audience: d.audience,
      account: await signer.getAddress(),
      action: d.action,
      envelopes: items.map((it) => envelopeDigest(it.ciphertext)),
      expiry: Math.floor(Date.now() / 1000) + ttl,
      nonce: newNonce(),
    };
    return signRequest(signer, req, opts.scheme ?? 'eip712');
  }

  /**
   * walletDecrypt opens one envelope for the wallet of signer: it signs the
   * request (one wallet prompt) and sends it to POST /v1/eth/decrypt. The
   * wallet's eth:0x… party needs a decrypt grant; otherwise it rejects with
   * code `not_granted`.
   */
  async walletDecrypt(signer: Signer, ciphertext: string, context?: ContextInput, opts?: WalletOptions): Promise<Uint8Array> {
    const items = [{ ciphertext, ...(context ? { context } : {}) }];
    const auth = await this.signDecrypt(signer, items, opts);
    const [r] = await this.decryptWithAuth(auth, items);
    return r!;
  }

  /** walletDecryptBatch opens many envelopes with one signature. See {@link BatchOptions}. */
  walletDecryptBatch(signer: Signer, items: DecryptItem[], opts?: WalletOptions & { partial?: false }): Promise<Uint8Array[]>;
  walletDecryptBatch(signer: Signer, items: DecryptItem[], opts: WalletOptions & { partial: true }): Promise<ItemResult<Uint8Array>[]>;
  async walletDecryptBatch(signer: Signer, items: DecryptItem[], opts: WalletOptions & BatchOptions = {}): Promise<Uint8Array[] | ItemResult<Uint8Array>[]> {
    const auth = await this.signDecrypt(signer, items, opts);
    return opts.partial ? this.decryptWithAuth(auth, items, { partial: true }) : this.decryptWithAuth(auth, items);
  }

  /**
   * decryptWithAuth sends a signature made elsewhere ({@link signDecrypt})
   * with the items it covers, in the same order. See {@link BatchOptions}.
   */
  decryptWithAuth(auth: EthAuth, items: DecryptItem[], opts?: { partial?: false }): Promise<Uint8Array[]>;
  decryptWithAuth(auth: EthAuth, items: DecryptItem[], opts: { partial: true }): Promise<ItemResult<Uint8Array>[]>;
  async decryptWithAuth(auth: EthAuth, items: DecryptItem[], opts?: BatchOptions): Promise<Uint8Array[] | ItemResult<Uint8Array>[]> {
    checkBatch(items);
    if (items.length === 1) {
      // A single request: the node answers a refusal with its HTTP status.
      const r = await this.#call<ApiResult>('POST', '/v1/eth/decrypt', { ...decryptItem(items[0]!), auth });
      const v = plaintextOf(r);
      return opts?.partial ? [{ ok: true, value: v }] : [v];
    }
    const r = await this.#call<{ batch?: ApiResult[] }>('POST', '/v1/eth/decrypt', { batch: items.map(decryptItem), auth });
    return settle(r.batch, items.length, plaintextOf, opts);
  }
}

function ctxField(context: ContextInput | undefined): { context?: Context } {
  const c = canonicalContext(context);
  return c ? { context: c } : {};
}

function decryptItem(it: DecryptItem): { ciphertext: string; context?: Context } {
  if (typeof it?.ciphertext !== 'string') throw new KeymeshError(0, ApiCodes.invalidRequest, 'a decrypt item needs a ciphertext string');
  return { ciphertext: it.ciphertext, ...ctxField(it.context) };
}

function checkBatch(items: unknown[]): void {
  if (!Array.isArray(items) || items.length === 0) {
    throw new KeymeshError(0, ApiCodes.invalidRequest, 'a batch needs at least one item');
  }
  if (items.length > 1000) throw new KeymeshError(0, ApiCodes.tooLarge, `batch of ${items.length} items is over the limit of 1000`);
}

function plaintextOf(r: ApiResult): Uint8Array {
  if (r.plaintext === undefined || r.plaintext === '') return new Uint8Array(0);
  const b = base64.decode(r.plaintext);
  if (b === null) throw new KeymeshError(200, ClientCodes.invalidResponse, 'plaintext is not base64');
  return b;
}

/** settle turns a batch answer into values or item results; see BatchOptions. */
function settle<T>(batch: ApiResult[] | undefined, n: number, value: (r: ApiResult) => T, opts?: BatchOptions): T[] | ItemResult<T>[] {
  if (!Array.isArray(batch) || batch.length !== n) {
    throw new KeymeshError(200, ClientCodes.invalidResponse, `batch answer has ${Array.isArray(batch) ? batch.length : 'no'} items for ${n}`);
  }
  const results: ItemResult<T>[] = batch.map((r) =>
    r.error ? { ok: false, error: new KeymeshError(0, r.error.code, r.error.message) } : { ok: true, value: value(r) },
  );
  const failed = results.filter((r) => !r.ok).length;
  if (failed === results.length || (failed > 0 && !opts?.partial)) throw new BatchError(results);
  return opts?.partial ? results : results.map((r) => (r as { ok: true; value: T }).value);
}

/** resolveChainId picks the chain a request is signed for; see WalletOptions.chainId. */
async function resolveChainId(signer: Signer, items: DecryptItem[], given?: bigint | number | string): Promise<bigint> {
  let fromItems: string | undefined;
  items.forEach((it, i) => {
    const c = it.context?.['chain_id'];
    if (c === undefined) return;
    const id = canonicalChainId(c);
    if (fromItems !== undefined && id !== fromItems) {
      throw new KeymeshError(0, ApiCodes.invalidRequest, `item ${i}: context chain_id ${id} differs from ${fromItems}; one signature is for one chain`);
    }
    fromItems = id;
  });
  if (given !== undefined) {
    const id = canonicalChainId(given);
    if (fromItems !== undefined && id !== fromItems) {
      throw new KeymeshError(0, ApiCodes.invalidRequest, `chainId ${id} is not the items' context chain_id ${fromItems}`);
    }
    return BigInt(id);
  }
  if (fromItems !== undefined) return BigInt(fromItems);
  if (signer.provider) return (await signer.provider.getNetwork()).chainId;
  throw new KeymeshError(0, ApiCodes.invalidRequest, 'no chain id: give opts.chainId, a context chain_id, or a signer with a provider');
}
