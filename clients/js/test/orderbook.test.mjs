// The OrderBook flow of a dApp back end, with ethers v6 and @keymesh/client,
// against a real keymeshd and a real chain: go test ./chaincode/ethereum
// -run TestJSClient starts both (go-ethereum's simulated backend behind
// HTTP JSON-RPC), and scripts/eth-demo.sh runs it against geth --dev; each
// sets:
//
//   KEYMESH_URL            the node's base URL
//   KEYMESH_APP_TOKEN      a token whose party may encrypt under orders/price and orders/counterparty
//   KEYMESH_RPC_URL        the chain's JSON-RPC URL
//   KEYMESH_DEPLOYER_KEY   a funded account's key (throwaway)
//   KEYMESH_READER_KEY     a wallet granted decrypt on both keys
//   KEYMESH_STRANGER_KEY   a wallet without a grant
//   KEYMESH_ORDERBOOK_ABI, KEYMESH_ORDERBOOK_BIN  chaincode/ethereum/example/OrderBook.{abi,bin}
//
// Without them the file's tests are skipped (npm test runs the unit tests).
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BrowserProvider, ContractFactory, JsonRpcProvider, NonceManager, Wallet, getBytes, hexlify, toQuantity, toUtf8Bytes } from 'ethers';
import { KeymeshClient, BatchError, KeymeshError, isCode, ethContext, envelopeToBytes, envelopeFromBytes } from '../dist/index.js';

const env = process.env;
const skip = env.KEYMESH_URL && env.KEYMESH_RPC_URL ? false : 'needs a node and a chain: go test ./chaincode/ethereum -run TestJSClient';
const PRICE = '101.25 USD';
const COUNTERPARTY = 'ACME Trading Ltd';
const text = (b) => new TextDecoder().decode(b);
const hexOf = (s) => hexlify(toUtf8Bytes(s)).slice(2);

let s; // the shared world, set up once
before(async () => {
  if (skip) return;
  const provider = new JsonRpcProvider(env.KEYMESH_RPC_URL, undefined, { batchMaxCount: 1, staticNetwork: true, pollingInterval: 20 });
  provider.pollingInterval = 20;
  // The NonceManager counts nonces itself: a dev chain's pending state may
  // lag a block just mined.
  const deployer = new NonceManager(new Wallet(env.KEYMESH_DEPLOYER_KEY, provider));
  const abi = JSON.parse(readFileSync(env.KEYMESH_ORDERBOOK_ABI, 'utf8'));
  const bin = readFileSync(env.KEYMESH_ORDERBOOK_BIN, 'utf8').trim();
  const factory = new ContractFactory(abi, bin.startsWith('0x') ? bin : '0x' + bin, deployer);
  const deploy = async () => {
    const c = await factory.deploy();
    await c.waitForDeployment();
    return c;
  };
  const book = await deploy();
  const address = await book.getAddress(); // checksummed, as ethers hands it out
  const { chainId } = await provider.getNetwork(); // a bigint
  const app = new KeymeshClient({ url: env.KEYMESH_URL, token: env.KEYMESH_APP_TOKEN });
  const wallets = new KeymeshClient({ url: env.KEYMESH_URL }); // no token: wallets sign
  // Encrypt with the values exactly as ethers gives them: bigint chain id, checksummed address.
  const price = await app.encrypt('orders/price', PRICE, { chain_id: chainId, contract: address, field: 'price' });
  const counterparty = await app.encrypt('orders/counterparty', COUNTERPARTY, { chain_id: chainId, contract: address, field: 'counterparty' });
  const tx = await book.place(1n, envelopeToBytes(price), counterparty);
  const receipt = await tx.wait();
  const event = receipt.logs.map((l) => book.interface.parseLog(l)).find((e) => e?.name === 'OrderPlaced');
  s = {
    provider, deployer, deploy, book, address, chainId, app, wallets, tx, receipt, event, price, counterparty,
    reader: new Wallet(env.KEYMESH_READER_KEY), // no provider: the chain id comes from the contexts
    stranger: new Wallet(env.KEYMESH_STRANGER_KEY),
    items: () => [
      { ciphertext: envelopeFromBytes(event.args.price), context: ethContext(chainId, address, 'price') },
      { ciphertext: event.args.counterparty, context: { chain_id: chainId, contract: address, field: 'counterparty' } },
    ],
  };
});

test('no plaintext in the transaction input, logs, block or return data', { skip }, async () => {
  const block = await s.provider.send('eth_getBlockByNumber', [toQuantity(s.receipt.blockNumber), true]);
  const raw = await s.provider.call({ to: s.address, data: s.book.interface.encodeFunctionData('entry', [1n]) });
  for (const [what, hay] of [['input', s.tx.data], ['logs', JSON.stringify(s.receipt.logs)], ['block', JSON.stringify(block)], ['return data', raw]]) {
    for (const p of [PRICE, COUNTERPARTY]) {
      assert.ok(!hay.toLowerCase().includes(hexOf(p)) && !hay.includes(p), `${what} holds the plaintext ${p}`);
    }
  }
  assert.equal(envelopeFromBytes(s.event.args.price), s.price, 'the bytes argument holds the envelope binary form');
});

test('the granted wallet decrypts the event (EIP-712, one signature for the batch)', { skip }, async () => {
  const [price, cp] = await s.wallets.walletDecryptBatch(s.reader, s.items());
  assert.equal(text(price), PRICE);
  assert.equal(text(cp), COUNTERPARTY);
});

test('the granted wallet decrypts with personal_sign (EIP-191)', { skip }, async () => {
  const [it] = s.items();
  assert.equal(text(await s.wallets.walletDecrypt(s.reader, it.ciphertext, it.context, { scheme: 'eip191' })), PRICE);
});

test('the granted wallet decrypts the return values of entry()', { skip }, async () => {
  const [, priceBytes, cp] = await s.book.entry(1n);
  const got = await s.wallets.walletDecryptBatch(s.reader, [
    { ciphertext: envelopeFromBytes(priceBytes), context: ethContext(s.chainId, s.address, 'price') },
    { ciphertext: cp, context: ethContext(s.chainId, s.address, 'counterparty') },
  ]);
  assert.deepEqual(got.map(text), [PRICE, COUNTERPARTY]);
});

test('an ungranted wallet: 403 not_granted, single and batch (a batch of refusals is no success)', { skip }, async () => {
  const [it] = s.items();
  await assert.rejects(s.wallets.walletDecrypt(s.stranger, it.ciphertext, it.context), (e) => e instanceof KeymeshError && e.status === 403 && e.code === 'not_granted');
  await assert.rejects(s.wallets.walletDecryptBatch(s.stranger, s.items(), { partial: true }), (e) => e instanceof BatchError && e.code === 'not_granted' && e.failures.length === 2);
  // The token of the back end may encrypt, not decrypt.
  await assert.rejects(s.app.decrypt(it.ciphertext, it.context), (e) => isCode(e, 'not_granted'));
});

test('partial batches name the refused item', { skip }, async () => {
  const items = [...s.items(), { ciphertext: 'km1:AAAA', context: ethContext(s.chainId, s.address, 'price') }];
  await assert.rejects(s.wallets.walletDecryptBatch(s.reader, items), (e) => e instanceof BatchError && e.failures.length === 1 && e.failures[0].index === 2);
  const r = await s.wallets.walletDecryptBatch(s.reader, items, { partial: true });
  assert.deepEqual(r.map((x) => x.ok), [true, true, false]);
  assert.equal(r[2].error.code, 'invalid_ciphertext');
});

test('of 20 simultaneous copies of one signed request exactly one succeeds', { skip }, async () => {
  const items = s.items();
  const auth = await s.wallets.signDecrypt(s.reader, items);
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => s.wallets.decryptWithAuth(auth, items)));
  const ok = results.filter((r) => r.status === 'fulfilled');
  assert.equal(ok.length, 1, JSON.stringify(results.map((r) => r.status)));
  assert.deepEqual(ok[0].value.map(text), [PRICE, COUNTERPARTY]);
  for (const r of results.filter((r) => r.status === 'rejected')) {
    assert.ok(isCode(r.reason, 'unauthenticated') && r.reason.status === 401, String(r.reason));
  }
});

test('envelopes moved to another field, contract or chain fail to decrypt', { skip }, async () => {
  const [price] = s.items();
  const other = await s.deploy();
  const otherAddr = await other.getAddress();
  for (const [what, ctx] of [
    ['another field', ethContext(s.chainId, s.address, 'counterparty')],
    ['another contract', ethContext(s.chainId, otherAddr, 'price')],
    ['another chain', ethContext(1n, s.address, 'price')],
  ]) {
    await assert.rejects(s.wallets.walletDecrypt(s.reader, price.ciphertext, ctx), (e) => isCode(e, 'decryption_failed') && e.status === 400, what);
  }
  // Copied as they are into the other contract's storage: still bound to the first.
  const tx = await other.place(1n, envelopeToBytes(s.price), s.counterparty);
  await tx.wait();
  const [, moved] = await other.entry(1n);
  await assert.rejects(s.wallets.walletDecrypt(s.reader, envelopeFromBytes(moved), ethContext(s.chainId, otherAddr, 'price')), (e) => isCode(e, 'decryption_failed'));
});

test('a signature for one chain does not open a context of another (400 from the node)', { skip }, async () => {
  const [price] = s.items();
  // Sign for chain 1 over the envelope, then send it with its true context (chain 1337).
  const auth = await s.wallets.signDecrypt(s.reader, [{ ciphertext: price.ciphertext }], { chainId: 1n });
  await assert.rejects(s.wallets.decryptWithAuth(auth, [price]), (e) => isCode(e, 'invalid_request') && /signed chain id/.test(e.message));
});

test('the node refuses a non-canonical-able context with 400 naming the form', { skip }, async () => {
  const res = await fetch(`${env.KEYMESH_URL}/v1/encrypt`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${env.KEYMESH_APP_TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ key: 'orders/price', plaintext: 'eA==', context: { chain_id: 'mainnet', contract: s.address, field: 'price' } }),
  });
  const body = await res.json();
  assert.equal(res.status, 400);
  assert.equal(body.error.code, 'invalid_request');
  assert.match(body.error.message, /chain_id.*must be a chain id/);
});

// eip1193 is a minimal injected wallet (window.ethereum) around key, as a
// browser extension answers: eth_signTypedData_v4 receives the typed data
// as JSON (EIP712Domain included) and personal_sign a hex message.
function eip1193(key, chainId) {
  const w = new Wallet(key);
  return {
    async request({ method, params }) {
      switch (method) {
        case 'eth_chainId': return toQuantity(chainId);
        case 'eth_accounts': case 'eth_requestAccounts': return [w.address.toLowerCase()];
        case 'eth_signTypedData_v4': {
          const [from, json] = params;
          assert.equal(from.toLowerCase(), w.address.toLowerCase());
          const td = JSON.parse(json);
          assert.deepEqual(td.types.EIP712Domain.map((f) => f.name), ['name', 'version', 'chainId', 'salt']);
          const { EIP712Domain, ...types } = td.types;
          return w.signTypedData(td.domain, types, td.message);
        }
        case 'personal_sign': return w.signMessage(getBytes(params[0]));
        default: throw Object.assign(new Error(`unsupported ${method}`), { code: 4200 });
      }
    },
  };
}

test('a browser wallet (EIP-1193 through ethers BrowserProvider) decrypts, EIP-712 and personal_sign', { skip }, async () => {
  const signer = await new BrowserProvider(eip1193(env.KEYMESH_READER_KEY, s.chainId)).getSigner();
  const [price, cp] = s.items();
  assert.equal(text(await s.wallets.walletDecrypt(signer, price.ciphertext, price.context)), PRICE);
  assert.equal(text(await s.wallets.walletDecrypt(signer, cp.ciphertext, cp.context, { scheme: 'eip191' })), COUNTERPARTY);
});
