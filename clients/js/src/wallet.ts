import { type Signer, type TypedDataField, TypedDataEncoder, hexlify, randomBytes, sha256, toUtf8Bytes } from 'ethers';
import { ClientCodes, KeymeshError } from './errors.js';

/** What GET /v1/eth/domain answers: the values a wallet signs for a node. */
export interface EthDomain {
  name: string;
  version: string;
  network_id: string;
  salt: string;
  /** The node's id: the request is valid at this node only. */
  audience: string;
  primary_type: string;
  type: string;
  action: string;
  max_ttl_seconds: number;
}

/** The `auth` object of POST /v1/eth/decrypt. */
export interface EthAuth {
  scheme?: 'eip712' | 'eip191';
  chain_id: number;
  account: string;
  expiry: number;
  nonce: string;
  signature: string;
}

/** The protocol version this client speaks (EthDomain.version). */
export const PROTOCOL_VERSION = '2';

/** The EIP-712 types of a keymesh request (without EIP712Domain, as ethers wants them). */
export const KEYMESH_TYPES: Record<string, TypedDataField[]> = {
  KeymeshRequest: [
    { name: 'account', type: 'address' },
    { name: 'audience', type: 'string' },
    { name: 'action', type: 'string' },
    { name: 'envelopes', type: 'bytes32[]' },
    { name: 'expiry', type: 'uint64' },
    { name: 'nonce', type: 'bytes32' },
  ],
};

/** The fields of one signed request. */
export interface KeymeshRequest {
  networkId: string; // 64 hex digits
  chainId: bigint;
  audience: string;
  account: string;
  action: string;
  envelopes: string[]; // 0x SHA-256 of each envelope's text
  expiry: number; // Unix seconds
  nonce: string; // 0x and 64 hex digits
}

/** envelopeDigest returns what a request signs for one envelope: SHA-256 of its text. */
export function envelopeDigest(text: string): string {
  return sha256(toUtf8Bytes(text));
}

/**
 * checkDomain refuses a node whose protocol this client does not speak:
 * another version or another EIP-712 type than KEYMESH_TYPES.
 */
export function checkDomain(d: EthDomain): void {
  const want = TypedDataEncoder.from(KEYMESH_TYPES).encodeType('KeymeshRequest');
  if (d.version !== PROTOCOL_VERSION || d.type !== want || d.name !== 'keymesh') {
    throw new KeymeshError(
      0,
      ClientCodes.unsupportedProtocol,
      `the node signs ${d.name} v${d.version} ${d.type}; this client speaks keymesh v${PROTOCOL_VERSION} ${want}`,
    );
  }
}

/**
 * personalSignText returns the exact EIP-191 (personal_sign) text of a
 * request: one field per line, envelopes numbered from 1, no trailing
 * newline. It is node/ethid's Request.Text.
 */
export function personalSignText(r: KeymeshRequest): string {
  return [
    'keymesh request',
    `network: ${r.networkId}`,
    `chain id: ${r.chainId.toString(10)}`,
    `audience: ${r.audience}`,
    `account: ${r.account.toLowerCase()}`,
    `action: ${r.action}`,
    `envelopes: ${r.envelopes.length}`,
    ...r.envelopes.map((e, i) => `envelope ${i + 1}: ${e}`),
    `expiry: ${r.expiry}`,
    `nonce: ${r.nonce}`,
  ].join('\n');
}

/** typedData returns the EIP-712 domain, types and message of a request. */
export function typedData(r: KeymeshRequest) {
  return {
    domain: { name: 'keymesh', version: PROTOCOL_VERSION, chainId: r.chainId, salt: '0x' + r.networkId },
    types: KEYMESH_TYPES,
    message: {
      account: r.account,
      audience: r.audience,
      action: r.action,
      envelopes: r.envelopes,
      expiry: r.expiry,
      nonce: r.nonce,
    },
  };
}

/**
 * signRequest signs r with signer (an ethers Wallet, or a browser wallet's
 * JsonRpcSigner) and returns the `auth` object: eth_signTypedData_v4 for
 * `eip712`, personal_sign for `eip191`.
 */
export async function signRequest(signer: Signer, r: KeymeshRequest, scheme: 'eip712' | 'eip191' = 'eip712'): Promise<EthAuth> {
  if (r.chainId > BigInt(Number.MAX_SAFE_INTEGER)) {
    // JSON numbers above 2^53 lose precision in JavaScript; no live chain
    // uses such ids, and the node would refuse the mangled value.
    throw new KeymeshError(0, ClientCodes.invalidContext, `chain id ${r.chainId} is above 2^53 and cannot travel as a JSON number`);
  }
  let signature: string;
  if (scheme === 'eip191') {
    signature = await signer.signMessage(personalSignText(r));
  } else {
    const td = typedData(r);
    signature = await signer.signTypedData(td.domain, td.types, td.message);
  }
  return {
    ...(scheme === 'eip191' ? { scheme } : {}),
    chain_id: Number(r.chainId),
    account: r.account,
    expiry: r.expiry,
    nonce: r.nonce,
    signature,
  };
}

/** newNonce returns 32 random bytes as 0x hex. */
export function newNonce(): string {
  return hexlify(randomBytes(32));
}
