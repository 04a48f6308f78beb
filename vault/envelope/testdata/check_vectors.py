#!/usr/bin/env python3
"""Independent check of keymesh's envelope vectors, written from the spec in
vault/envelope/doc.go with Python's `cryptography` (OpenSSL), not from the Go
code. Usage: check_vectors.py vectors.json vectors-v1.json nist-gcm.json

Exits non-zero and names the vector if any envelope differs."""
import base64, hashlib, hmac, json, struct, sys

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MODES = {"random": 1, "endorsement": 2, "deterministic": 3}


def hkdf(key, info):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


def header(v):
    fmt = v.get("format", 1)
    name = v["key_name"].encode()
    h = bytes([fmt, MODES[v["mode"]], len(name)]) + name + struct.pack(">I", v["version"])
    if fmt == 2 and v["mode"] == "random":
        h += bytes.fromhex(v["sealer"])
    return h


def aad(v, h):
    ctx = v["context"] or {}
    out = b"keymesh/v1 envelope" + h + bytes.fromhex(v["network_id"])
    keys = sorted(k.encode() for k in ctx)
    out += struct.pack(">H", len(keys))
    for k in keys:
        val = ctx[k.decode()].encode()
        out += struct.pack(">H", len(k)) + k + struct.pack(">I", len(val)) + val
    return out


def prf(key, v, a, pt):
    if v["mode"] == "endorsement":
        tx = v["tx_id"].encode()
        msg = b"\x02" + struct.pack(">I", len(tx)) + tx
    else:
        msg = b"\x03"
    msg += struct.pack(">I", len(a)) + a + pt
    return hmac.new(key, msg, hashlib.sha256).digest()


def envelope(v):
    key = bytes.fromhex(v["key"])
    pt = bytes.fromhex(v["plaintext"])
    h = header(v)
    a = aad(v, h)
    fmt = v.get("format", 1)
    if fmt == 1:
        if v["mode"] == "random":
            nonce = bytes.fromhex(v["nonce"])
        else:
            nonce = prf(hkdf(key, b"keymesh/v1 nonce-prf"), v, a, pt)[:12]
        return h + nonce + AESGCM(key).encrypt(nonce, pt, a)
    if v["mode"] == "random":
        name = v["key_name"].encode()
        info = (b"keymesh/v1 random subkey" + bytes.fromhex(v["network_id"]) +
                bytes([len(name)]) + name + struct.pack(">I", v["version"]) + bytes.fromhex(v["sealer"]))
        nonce = bytes.fromhex(v["nonce"])
        return h + nonce + AESGCM(hkdf(key, info)).encrypt(nonce, pt, a)
    siv = prf(hkdf(key, b"keymesh/v2 siv iv"), v, a, pt)[:16]
    enc = Cipher(algorithms.AES(hkdf(key, b"keymesh/v2 siv enc")), modes.CTR(siv)).encryptor()
    ct = enc.update(pt) + enc.finalize()
    tag = hmac.new(hkdf(key, b"keymesh/v2 siv mac"),
                   b"\x04" + struct.pack(">I", len(a)) + a + siv + ct, hashlib.sha256).digest()[:16]
    return h + siv + ct + tag


def main():
    bad = 0
    n = 0
    for path in sys.argv[1:]:
        doc = json.load(open(path))
        if "vectors" in doc:
            for v in doc["vectors"]:
                n += 1
                got = envelope(v)
                if got.hex() != v["envelope"]:
                    print(f"FAIL {path}: {v['name']}: envelope {got.hex()} != {v['envelope']}")
                    bad += 1
                text = "km1:" + base64.urlsafe_b64encode(got).decode().rstrip("=")
                if text != v["text"]:
                    print(f"FAIL {path}: {v['name']}: text differs")
                    bad += 1
        for g in doc.get("gcm", []):
            n += 1
            out = AESGCM(bytes.fromhex(g["key"])).encrypt(bytes.fromhex(g["iv"]), bytes.fromhex(g["pt"]), bytes.fromhex(g["aad"]))
            if out.hex() != g["ct"] + g["tag"]:
                print(f"FAIL {path}: {g['name']}")
                bad += 1
    print(f"checked {n} vectors, {bad} failures")
    sys.exit(1 if bad or n == 0 else 0)


if __name__ == "__main__":
    main()
