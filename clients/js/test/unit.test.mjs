// Unit tests of @keymesh/client that need no node: base64, envelopes as
// bytes, canonical contexts, the personal_sign text, typed errors and
// batch results (through a fake fetch). Run: npm test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Wallet, TypedDataEncoder, verifyMessage, verifyTypedData } from 'ethers';
import {
  KeymeshClient, KeymeshError, BatchError, isCode, canonicalContext, canonicalChainId, canonicalAddress,
  ethContext, envelopeToBytes, envelopeFromBytes, personalSignText, typedData, KEYMESH_TYPES, signRequest,
} from '../dist/index.js';
import { base64, base64url } from '../dist/base64.js';

test('base64 and base64url agree with Node for every length 0..64, and decode strictly', () => {
  for (let n = 0; n <= 64; n++) {
    const b = new Uint8Array(n).map((_, i) => (i * 37 + n) & 0xff);
    assert.equal(base64.encode(b), Buffer.from(b).toString('base64'));
    assert.equal(base64url.encode(b), Buffer.from(b).toString('base64url'));
    assert.deepEqual(base64.decode(base64.encode(b)), b);
    assert.deepEqual(base64url.decode(base64url.encode(b)), b);
  }
  for (const bad of ['A', 'AB=', 'A===', 'AB+/', 'AB==', 'AQ=', 'AR']) {
    assert.equal(base64url.decode(bad), null, `base64url.decode(${bad})`);
  }
  assert.equal(base64.decode('AR=='), null, 'non-zero trailing bits');
});

test('envelopes: text ↔ bytes round trip; not an envelope is invalid_ciphertext', () => {
  const text = 'km1:AQEIZGVtby9zc24AAAABAQ';
  const b = envelopeToBytes(text);
  assert.ok(b instanceof Uint8Array);
  assert.equal(envelopeFromBytes(b), text);
  assert.equal(envelopeFromBytes('0x' + Buffer.from(b).toString('hex')), text, 'ethers returns bytes as 0x hex');
  for (const bad of ['km2:AAAA', 'km1:', 'km1:AA==', 'km1:A+B/']) {
    assert.throws(() => envelopeToBytes(bad), (e) => isCode(e, 'invalid_ciphertext'), bad);
  }
  assert.throws(() => envelopeFromBytes('0x'), (e) => isCode(e, 'invalid_ciphertext'));
});

test('canonical contexts: what ethers hands out becomes the one form the node binds', () => {
  const lower = '0x5fbdb2315678afecb367f032d93f642f64180aa3';
  const checksummed = '0x5FbDB2315678afecb367f032d93F642f64180aa3';
  assert.deepEqual(canonicalContext({ chain_id: 1337n, contract: checksummed, field: 'price' }), { chain_id: '1337', contract: lower, field: 'price' });
  assert.deepEqual(canonicalContext({ chain_id: '0x539' }), { chain_id: '1337' });
  assert.deepEqual(canonicalContext({ chain_id: 11155111 }), { chain_id: '11155111' });
  assert.deepEqual(canonicalContext({ contract: lower.toUpperCase().replace('0X', '0x') }), { contract: lower });
  assert.deepEqual(ethContext(1337n, checksummed, 'price'), { chain_id: '1337', contract: lower, field: 'price' });
  assert.equal(canonicalChainId('18446744073709551615'), '18446744073709551615');
  assert.equal(canonicalAddress(lower), lower);
  for (const [name, ctx] of [
    ['zero', { chain_id: 0 }], ['2^64', { chain_id: 2n ** 64n }], ['name', { chain_id: 'mainnet' }], ['unsafe number', { chain_id: 2 ** 60 }],
    ['bad checksum', { contract: '0x5FbDB2315678afecb367f032d93F642f64180aA3' }], ['short', { contract: '0x5fbdb' }],
    ['number elsewhere', { field: 1 }],
  ]) {
    assert.throws(() => canonicalContext(ctx), (e) => e instanceof KeymeshError && e.code === 'invalid_context' && /must be/.test(e.message), name);
  }
});

const req = {
  networkId: 'ab'.repeat(32), chainId: 1337n, audience: 'node-1', account: '0x71C7656EC7ab88b098defB751B7401B5f6d8976F',
  action: 'decrypt', envelopes: ['0x' + '11'.repeat(32), '0x' + '22'.repeat(32)], expiry: 1800000000, nonce: '0x' + '07'.repeat(32),
};

test('personal_sign text: exactly node/ethid Request.Text', () => {
  assert.equal(personalSignText(req), [
    'keymesh request',
    `network: ${'ab'.repeat(32)}`,
    'chain id: 1337',
    'audience: node-1',
    'account: 0x71c7656ec7ab88b098defb751b7401b5f6d8976f',
    'action: decrypt',
    'envelopes: 2',
    `envelope 1: 0x${'11'.repeat(32)}`,
    `envelope 2: 0x${'22'.repeat(32)}`,
    'expiry: 1800000000',
    `nonce: 0x${'07'.repeat(32)}`,
  ].join('\n'));
});

test('signRequest: EIP-712 and personal_sign signatures recover to the wallet', async () => {
  const w = Wallet.createRandom();
  const r = { ...req, account: w.address };
  const a712 = await signRequest(w, r);
  const td = typedData(r);
  assert.equal(verifyTypedData(td.domain, td.types, td.message, a712.signature), w.address);
  assert.equal(a712.scheme, undefined);
  assert.equal(a712.chain_id, 1337);
  const a191 = await signRequest(w, r, 'eip191');
  assert.equal(a191.scheme, 'eip191');
  assert.equal(verifyMessage(personalSignText(r), a191.signature), w.address);
  assert.equal(TypedDataEncoder.from(KEYMESH_TYPES).encodeType('KeymeshRequest'),
    'KeymeshRequest(address account,string audience,string action,bytes32[] envelopes,uint64 expiry,bytes32 nonce)');
});

// fakeFetch answers every request with status and body, and records them.
function fakeFetch(status, body) {
  const calls = [];
  const f = async (url, init) => {
    calls.push({ url, init, body: init.body ? JSON.parse(init.body) : undefined });
    return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
  };
  f.calls = calls;
  return f;
}

test('typed errors carry the API status and stable code', async () => {
  const c = new KeymeshClient({ url: 'http://127.0.0.1:1', token: 'kmt_x', fetch: fakeFetch(403, { error: { code: 'not_granted', message: 'no grant' } }) });
  await assert.rejects(c.decrypt('km1:AAAA', { field: 'f' }), (e) => e instanceof KeymeshError && e.status === 403 && e.code === 'not_granted');
  const unreachable = new KeymeshClient({ url: 'http://127.0.0.1:1', fetch: async () => { throw new TypeError('fetch failed'); } });
  await assert.rejects(unreachable.decrypt('km1:AAAA'), (e) => isCode(e, 'unreachable') && e.status === 0);
  const html = new KeymeshClient({ url: 'http://127.0.0.1:1', fetch: async () => new Response('<html>bad gateway</html>', { status: 502 }) });
  await assert.rejects(html.decrypt('km1:AAAA'), (e) => isCode(e, 'invalid_response') && e.status === 502);
});

test('requests carry canonical contexts and base64 plaintexts', async () => {
  const f = fakeFetch(200, { ciphertext: 'km1:AAAA', key: 'k/a', version: 1 });
  const c = new KeymeshClient({ url: 'http://127.0.0.1:1/', token: 'kmt_x', fetch: f });
  assert.equal(await c.encrypt('k/a', 'héllo', { chain_id: 0x539n, contract: '0x5FbDB2315678afecb367f032d93F642f64180aa3', field: 'p' }), 'km1:AAAA');
  assert.equal(f.calls[0].url, 'http://127.0.0.1:1/v1/encrypt');
  assert.equal(f.calls[0].init.headers.Authorization, 'Bearer kmt_x');
  assert.deepEqual(f.calls[0].body, {
    key: 'k/a', plaintext: Buffer.from('héllo').toString('base64'),
    context: { chain_id: '1337', contract: '0x5fbdb2315678afecb367f032d93f642f64180aa3', field: 'p' },
  });
  await assert.rejects(c.encrypt('k/a', 'x', { chain_id: 'mainnet' }), (e) => isCode(e, 'invalid_context'));
  assert.equal(f.calls.length, 1, 'an invalid context is refused before anything is sent');
});

test('batches: a refused item cannot be missed, and all refusals is never a success', async () => {
  const mixed = { batch: [{ plaintext: Buffer.from('a').toString('base64') }, { error: { code: 'not_granted', message: 'no grant' } }] };
  const c = new KeymeshClient({ url: 'http://127.0.0.1:1', token: 't', fetch: fakeFetch(200, mixed) });
  const items = [{ ciphertext: 'km1:AAAA' }, { ciphertext: 'km1:BBBB' }];
  await assert.rejects(c.decryptBatch(items), (e) => e instanceof BatchError && e.code === 'not_granted' && e.failures.length === 1 && e.failures[0].index === 1);
  const settled = await c.decryptBatch(items, { partial: true });
  assert.equal(settled[0].ok, true);
  assert.equal(new TextDecoder().decode(settled[0].value), 'a');
  assert.equal(settled[1].ok, false);
  assert.equal(settled[1].error.code, 'not_granted');
  const none = { batch: [{ error: { code: 'not_granted', message: 'x' } }, { error: { code: 'decryption_failed', message: 'y' } }] };
  const d = new KeymeshClient({ url: 'http://127.0.0.1:1', token: 't', fetch: fakeFetch(200, none) });
  await assert.rejects(d.decryptBatch(items, { partial: true }), (e) => e instanceof BatchError && e.failures.length === 2);
  await assert.rejects(c.decryptBatch([]), (e) => isCode(e, 'invalid_request'));
  const short = new KeymeshClient({ url: 'http://127.0.0.1:1', token: 't', fetch: fakeFetch(200, { batch: [{ plaintext: '' }] }) });
  await assert.rejects(short.decryptBatch(items), (e) => isCode(e, 'invalid_response'));
});

test('browser-safe: dist imports only ethers and itself, and uses no Buffer or process', async () => {
  const { readdirSync, readFileSync } = await import('node:fs');
  const dir = new URL('../dist/', import.meta.url);
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.js'))) {
    const code = readFileSync(new URL(f, dir), 'utf8').replace(/\/\/.*$/gm, '').replace(/\/\*[\s\S]*?\*\//g, '');
    for (const m of code.matchAll(/(?:import|export)[^'"]*from\s*['"]([^'"]+)['"]/g)) {
      assert.ok(m[1] === 'ethers' || m[1].startsWith('./'), `${f} imports ${m[1]}`);
    }
    assert.ok(!/\bBuffer\b|\bprocess\.|\brequire\(/.test(code), `${f} uses a Node-only global`);
  }
});

const domainBody = {
  name: 'keymesh', version: '2', network_id: 'ab'.repeat(32), salt: '0x' + 'ab'.repeat(32), audience: 'node-1',
  primary_type: 'KeymeshRequest',
  type: 'KeymeshRequest(address account,string audience,string action,bytes32[] envelopes,uint64 expiry,bytes32 nonce)',
  action: 'decrypt', max_ttl_seconds: 600,
};

test('wallet requests: one chain per signature, a known protocol, a bounded lifetime', async () => {
  const w = Wallet.createRandom(); // no provider
  const c = new KeymeshClient({ url: 'http://127.0.0.1:1', fetch: fakeFetch(200, domainBody) });
  const auth = await c.signDecrypt(w, [{ ciphertext: 'km1:AAAA', context: { chain_id: '0x539', field: 'f' } }], { ttlSeconds: 60 });
  assert.equal(auth.chain_id, 1337, 'the chain id comes from the context, canonical');
  assert.ok(auth.expiry > Date.now() / 1000 && auth.expiry <= Date.now() / 1000 + 61);
  assert.match(auth.nonce, /^0x[0-9a-f]{64}$/);
  await assert.rejects(c.signDecrypt(w, [{ ciphertext: 'km1:AAAA', context: { chain_id: 1 } }, { ciphertext: 'km1:BBBB', context: { chain_id: 5 } }]),
    (e) => isCode(e, 'invalid_request') && /one signature is for one chain/.test(e.message));
  await assert.rejects(c.signDecrypt(w, [{ ciphertext: 'km1:AAAA', context: { chain_id: 1 } }], { chainId: 5n }), (e) => isCode(e, 'invalid_request'));
  await assert.rejects(c.signDecrypt(w, [{ ciphertext: 'km1:AAAA' }]), (e) => isCode(e, 'invalid_request') && /no chain id/.test(e.message));
  await assert.rejects(c.signDecrypt(w, [{ ciphertext: 'km1:AAAA' }], { chainId: 1, ttlSeconds: 601 }), (e) => isCode(e, 'invalid_request'));
  const old = new KeymeshClient({ url: 'http://127.0.0.1:1', fetch: fakeFetch(200, { ...domainBody, version: '1' }) });
  await assert.rejects(old.signDecrypt(w, [{ ciphertext: 'km1:AAAA' }], { chainId: 1 }), (e) => isCode(e, 'unsupported_protocol'));
});
