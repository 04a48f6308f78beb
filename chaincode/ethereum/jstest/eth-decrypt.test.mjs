// An ethers v6 wallet signs keymesh requests for a running keymeshd: the
// EIP-712 typed data of node/ethid with Wallet.signTypedData,
// and the EIP-191 text with Wallet.signMessage. Go's TestEthersClient starts
// the node, grants the wallet, encrypts a value and runs this file with:
//
//   KEYMESH_URL               the node's base URL (http://127.0.0.1:PORT)
//   KEYMESH_ETH_PRIVATE_KEY   the granted wallet's key (0x…, a throwaway test key)
//   KEYMESH_STRANGER_KEY      a wallet without a grant
//   KEYMESH_CHAIN_ID          the chain id of the envelope's context
//   KEYMESH_CIPHERTEXT        the envelope (km1:…)
//   KEYMESH_CONTEXT           its context, JSON
//   KEYMESH_PLAINTEXT         the expected plaintext
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Wallet, TypedDataEncoder, sha256, toUtf8Bytes, hexlify, randomBytes } from 'ethers';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set; run this through go test ./chaincode/ethereum/ -run TestEthersClient`);
  return v;
};
const url = env('KEYMESH_URL');
const wallet = new Wallet(env('KEYMESH_ETH_PRIVATE_KEY'));
const stranger = new Wallet(env('KEYMESH_STRANGER_KEY'));
const chainId = Number(env('KEYMESH_CHAIN_ID'));
const ciphertext = env('KEYMESH_CIPHERTEXT');
const context = JSON.parse(env('KEYMESH_CONTEXT'));
const plaintext = env('KEYMESH_PLAINTEXT');

const types = {
  KeymeshRequest: [
    { name: 'account', type: 'address' },
    { name: 'audience', type: 'string' },
    { name: 'action', type: 'string' },
    { name: 'envelopes', type: 'bytes32[]' },
    { name: 'expiry', type: 'uint64' },
    { name: 'nonce', type: 'bytes32' },
  ],
};

async function domain() {
  const res = await fetch(`${url}/v1/eth/domain`);
  assert.equal(res.status, 200);
  const d = await res.json();
  assert.equal(d.type, TypedDataEncoder.from(types).encodeType('KeymeshRequest'));
  return { name: d.name, version: d.version, chainId, salt: d.salt, audience: d.audience };
}

// eip712 returns the EIP-712 domain of d (without the audience, which is
// a field of the message).
const eip712 = ({ name, version, chainId, salt }) => ({ name, version, chainId, salt });

function message(d, signer, texts) {
  return {
    account: signer.address,
    audience: d.audience,
    action: 'decrypt',
    envelopes: texts.map((t) => sha256(toUtf8Bytes(t))),
    expiry: Math.floor(Date.now() / 1000) + 60,
    nonce: hexlify(randomBytes(32)),
  };
}

async function decrypt(body) {
  const res = await fetch(`${url}/v1/eth/decrypt`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

const auth = (msg, signature, scheme) => ({
  ...(scheme ? { scheme } : {}),
  chain_id: chainId,
  account: msg.account,
  expiry: msg.expiry,
  nonce: msg.nonce,
  signature,
});

// The EIP-191 text of node/ethid's Request.Text.
function text(d, msg) {
  return [
    'keymesh request',
    `network: ${d.salt.slice(2)}`,
    `chain id: ${d.chainId}`,
    `audience: ${msg.audience}`,
    `account: ${msg.account.toLowerCase()}`,
    `action: ${msg.action}`,
    `envelopes: ${msg.envelopes.length}`,
    ...msg.envelopes.map((e, i) => `envelope ${i + 1}: ${e}`),
    `expiry: ${msg.expiry}`,
    `nonce: ${msg.nonce}`,
  ].join('\n');
}

test('signTypedData: decrypts, and the same signature is refused a second time', async () => {
  const d = await domain();
  const msg = message(d, wallet, [ciphertext]);
  const signature = await wallet.signTypedData(eip712(d), types, msg);
  const req = { ciphertext, context, auth: auth(msg, signature) };
  const first = await decrypt(req);
  assert.equal(first.status, 200, JSON.stringify(first.body));
  assert.equal(Buffer.from(first.body.plaintext, 'base64').toString('utf8'), plaintext);
  const replay = await decrypt(req);
  assert.equal(replay.status, 401);
  assert.equal(replay.body.error.code, 'unauthenticated');
});

test('batch: one signature covers every envelope, in order', async () => {
  const d = await domain();
  const msg = message(d, wallet, [ciphertext, ciphertext]);
  const signature = await wallet.signTypedData(eip712(d), types, msg);
  const r = await decrypt({ batch: [{ ciphertext, context }, { ciphertext, context }], auth: auth(msg, signature) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.batch.length, 2);
  for (const item of r.body.batch) assert.equal(Buffer.from(item.plaintext, 'base64').toString('utf8'), plaintext);
});

test('tampered signature: 401 unauthenticated', async () => {
  const d = await domain();
  const msg = message(d, wallet, [ciphertext]);
  const signature = await wallet.signTypedData(eip712(d), types, msg);
  const i = 20;
  const tampered = signature.slice(0, i) + (signature[i] === '0' ? '1' : '0') + signature.slice(i + 1);
  const r = await decrypt({ ciphertext, context, auth: auth(msg, tampered) });
  assert.equal(r.status, 401);
  assert.equal(r.body.error.code, 'unauthenticated');
});

test('a signature over another envelope: 401 unauthenticated', async () => {
  const d = await domain();
  const msg = message(d, wallet, [ciphertext + 'x']);
  const signature = await wallet.signTypedData(eip712(d), types, msg);
  const r = await decrypt({ ciphertext, context, auth: auth(msg, signature) });
  assert.equal(r.status, 401);
});

test('personal_sign (EIP-191) fallback: decrypts', async () => {
  const d = await domain();
  const msg = message(d, wallet, [ciphertext]);
  const signature = await wallet.signMessage(text(d, msg));
  const r = await decrypt({ ciphertext, context, auth: auth(msg, signature, 'eip191') });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(Buffer.from(r.body.plaintext, 'base64').toString('utf8'), plaintext);
});

test('a wallet without a grant: 403 not_granted', async () => {
  const d = await domain();
  const msg = message(d, stranger, [ciphertext]);
  const signature = await stranger.signTypedData(eip712(d), types, msg);
  const r = await decrypt({ ciphertext, context, auth: auth(msg, signature) });
  assert.equal(r.status, 403);
  assert.equal(r.body.error.code, 'not_granted');
});
