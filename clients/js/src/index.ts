/**
 * @keymesh/client — keymesh for Ethereum dApps (Node 18+ and browsers, ESM,
 * ethers v6 as a peer dependency).
 *
 * Start with {@link KeymeshClient}: `encrypt` / `encryptBatch` seal fields
 * through a keymesh node with an API token; `walletDecrypt` /
 * `walletDecryptBatch` open them for a wallet that signs the request
 * (EIP-712 or personal_sign) from an ethers `Signer`; `decrypt` /
 * `decryptBatch` open them for the token's party. {@link envelopeToBytes}
 * and {@link envelopeFromBytes} convert envelopes for `bytes` ABI
 * arguments; {@link ethContext} and {@link canonicalContext} build the
 * context a contract field is bound to.
 */
export { KeymeshClient } from './client.js';
export type { BatchOptions, ClientOptions, DecryptItem, EncryptItem, Plaintext, WalletOptions } from './client.js';
export { canonicalAddress, canonicalChainId, canonicalContext, ethContext } from './context.js';
export type { Context, ContextInput } from './context.js';
export { ENVELOPE_PREFIX, envelopeFromBytes, envelopeToBytes } from './envelope.js';
export { ApiCodes, BatchError, ClientCodes, KeymeshError, isCode } from './errors.js';
export type { ApiCode, ClientCode, ErrorCode, ItemResult } from './errors.js';
export { KEYMESH_TYPES, PROTOCOL_VERSION, envelopeDigest, personalSignText, signRequest, typedData } from './wallet.js';
export type { EthAuth, EthDomain, KeymeshRequest } from './wallet.js';
