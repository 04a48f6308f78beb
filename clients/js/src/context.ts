import { getAddress } from 'ethers';
import { ClientCodes, KeymeshError } from './errors.js';

/** An envelope context as the API takes it: string keys and values. */
export type Context = Record<string, string>;

/**
 * A context as a dApp holds it: `chain_id` may be what ethers hands out
 * (a bigint from `provider.getNetwork()`, a number, or a 0x hex string)
 * and `contract` a checksummed address; {@link canonicalContext} turns it
 * into the one form the envelope's AAD binds.
 */
export type ContextInput = Record<string, string | number | bigint>;

const MAX_U64 = (1n << 64n) - 1n;

function invalid(key: string, value: unknown, expect: string): KeymeshError {
  let v = String(value);
  if (v.length > 80) v = v.slice(0, 80) + '…';
  return new KeymeshError(0, ClientCodes.invalidContext, `context "${key}" must be ${expect}; got ${JSON.stringify(v)}`);
}

const EXPECT_CHAIN = 'a chain id: a positive integer below 2^64 (a bigint, a safe integer, a decimal string such as "1337", or 0x hex such as "0x539")';
const EXPECT_CONTRACT = 'a contract address: "0x" and 40 hex digits, lower-case, upper-case or with a valid EIP-55 checksum';

/**
 * canonicalChainId returns a chain id's canonical form: decimal, without
 * leading zeros. It accepts a bigint, a safe integer, a decimal string or
 * a 0x hex string; anything else (zero, negative, 2^64 or more, a name)
 * throws a KeymeshError `invalid_context`.
 */
export function canonicalChainId(v: string | number | bigint): string {
  let n: bigint;
  if (typeof v === 'bigint') {
    n = v;
  } else if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw invalid('chain_id', v, EXPECT_CHAIN);
    n = BigInt(v);
  } else if (/^0x[0-9a-fA-F]{1,64}$/.test(v) || /^[0-9]{1,64}$/.test(v)) {
    n = BigInt(v);
  } else {
    throw invalid('chain_id', v, EXPECT_CHAIN);
  }
  if (n <= 0n || n > MAX_U64) throw invalid('chain_id', v, EXPECT_CHAIN);
  return n.toString(10);
}

/**
 * canonicalAddress returns an address's canonical form: "0x" and 40
 * lower-case hex digits. Mixed case must be a valid EIP-55 checksum (a
 * mistyped address is refused, not bound); otherwise it throws a
 * KeymeshError `invalid_context`.
 */
export function canonicalAddress(v: string): string {
  if (typeof v !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(v)) throw invalid('contract', v, EXPECT_CONTRACT);
  const hex = v.slice(2);
  if (hex !== hex.toLowerCase() && hex !== hex.toUpperCase()) {
    let checksummed: string;
    try {
      checksummed = getAddress(v);
    } catch {
      throw invalid('contract', v, EXPECT_CONTRACT);
    }
    if (checksummed !== v) throw invalid('contract', v, EXPECT_CONTRACT);
  }
  return v.toLowerCase();
}

/**
 * canonicalContext returns a copy of ctx with every value a string and
 * `chain_id` and `contract`, if present, in canonical form — the same
 * rewrite a keymesh node does, so that what is encrypted with ethers-style
 * values decrypts with canonical ones and back. Other keys must already be
 * strings (a number elsewhere is a mistake this refuses).
 */
export function canonicalContext(ctx: ContextInput | undefined): Context | undefined {
  if (ctx === undefined) return undefined;
  const out: Context = {};
  for (const [k, v] of Object.entries(ctx)) {
    if (k === 'chain_id') out[k] = canonicalChainId(v);
    else if (k === 'contract') {
      if (typeof v !== 'string') throw invalid(k, v, EXPECT_CONTRACT);
      out[k] = canonicalAddress(v);
    } else if (typeof v === 'string') out[k] = v;
    else throw new KeymeshError(0, ClientCodes.invalidContext, `context "${k}" must be a string`);
  }
  return out;
}

/**
 * ethContext returns the context of a contract field as keymesh's Go
 * middleware (chaincode/ethereum) binds it:
 * `{chain_id, contract, field}`, canonical.
 */
export function ethContext(chainId: string | number | bigint, contract: string, field: string): Context {
  return { chain_id: canonicalChainId(chainId), contract: canonicalAddress(contract), field };
}
