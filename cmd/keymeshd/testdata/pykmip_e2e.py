#!/usr/bin/python3
"""PyKMIP (kmip.pie.client.ProxyKmipClient, KMIP 1.2) against keymeshd.

Driven by cmd/keymeshd/kmip_test.go: one step per run, its configuration as
JSON in argv[2], its result as one JSON object on stdout. A step that finds
the server misbehaving exits non-zero with the reason on stderr.
"""

import json
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from kmip import enums
from kmip.core import exceptions as core_exceptions
from kmip.pie import client as pie_client
from kmip.pie import exceptions

GCM = {
    "block_cipher_mode": enums.BlockCipherMode.GCM,
    "cryptographic_algorithm": enums.CryptographicAlgorithm.AES,
}
USAGE = [
    enums.CryptographicUsageMask.ENCRYPT,
    enums.CryptographicUsageMask.DECRYPT,
]


def fail(msg):
    sys.stderr.write("pykmip_e2e: " + msg + "\n")
    sys.exit(1)


def connect(cfg, cert="cert", key="key"):
    c = pie_client.ProxyKmipClient(
        hostname=cfg["hosts"], port=cfg["port"], cert=cfg[cert], key=cfg[key],
        ca=cfg["ca"], ssl_version="PROTOCOL_SSLv23", config_file=cfg["conf"])
    return c  # opened by "with"


def refused(fn, *args, **kwargs):
    """Returns the result reason of a refused operation, or fails."""
    try:
        fn(*args, **kwargs)
    except exceptions.KmipOperationFailure as e:
        return e.reason.name
    fail("%s was not refused" % fn.__name__)


def state(c, uid):
    _, attrs = c.get_attributes(uid, ["State"])
    return attrs[0].attribute_value.value.name


def step_create(cfg):
    out = {}
    with connect(cfg) as c:
        uid = c.create(enums.CryptographicAlgorithm.AES, 256, name=cfg["name"],
                       cryptographic_usage_mask=USAGE + [enums.CryptographicUsageMask.EXPORT])
        out["uid"] = uid
        out["state_created"] = state(c, uid)
        c.activate(uid)
        out["state_activated"] = state(c, uid)
        out["located"] = c.locate(attributes=[c.attribute_factory.create_attribute(enums.AttributeType.NAME, cfg["name"])])
        _, attrs = c.get_attributes(uid, ["Cryptographic Algorithm", "Cryptographic Length", "Name", "Object Type"])
        out["attributes"] = {a.attribute_name.value: str(a.attribute_value) for a in attrs}
        out["get_refused"] = refused(c.get, uid)
        ct, iv = c.encrypt(b"pykmip plaintext", uid=uid, cryptographic_parameters=GCM)
        out["ciphertext"], out["iv"] = ct.hex(), iv.hex()
        pt = c.decrypt(ct, uid=uid, cryptographic_parameters=GCM, iv_counter_nonce=iv)
        out["decrypted"] = pt.decode()
        bad = bytes([ct[0] ^ 1]) + ct[1:]
        out["tampered_refused"] = refused(c.decrypt, bad, uid=uid, cryptographic_parameters=GCM, iv_counter_nonce=iv)
        uid2 = c.create(enums.CryptographicAlgorithm.AES, 256, name=cfg["name"] + "-sealed", cryptographic_usage_mask=USAGE)
        c.activate(uid2)
        out["uid2"] = uid2
    return out


def step_get(cfg):
    out = {}
    with connect(cfg) as c:
        key = c.get(cfg["uid"])
        material = key.value
        out["length"] = len(material)
        ct, iv = bytes.fromhex(cfg["ciphertext"]), bytes.fromhex(cfg["iv"])
        # The exported key opens what the server's Encrypt sealed.
        out["local_decrypt"] = AESGCM(material).decrypt(iv, ct, None).decode()
        out["get2_refused"] = refused(c.get, cfg["uid2"])
    return out


def step_denied(cfg):
    out = {}
    with connect(cfg, "other_cert", "other_key") as c:
        out["encrypt_refused"] = refused(c.encrypt, b"x", uid=cfg["uid"], cryptographic_parameters=GCM)
        out["get_attributes_refused"] = refused(c.get_attributes, cfg["uid"], ["State"])
        out["located"] = c.locate()
    return out


def step_untrusted(cfg):
    try:
        with connect(cfg, "rogue_cert", "rogue_key") as c:
            c.create(enums.CryptographicAlgorithm.AES, 256)
    except (exceptions.KmipOperationFailure, core_exceptions.KmipError):
        fail("the untrusted client reached the KMIP layer")
    except Exception as e:  # the TLS handshake or the socket fails
        return {"refused": type(e).__name__}
    fail("the untrusted client was served")


def step_finish(cfg):
    out = {}
    uid = cfg["uid"]
    ct, iv = bytes.fromhex(cfg["ciphertext"]), bytes.fromhex(cfg["iv"])
    with connect(cfg) as c:
        out["destroy_active_refused"] = refused(c.destroy, uid)
        c.revoke(enums.RevocationReasonCode.KEY_COMPROMISE, uid, revocation_message="test")
        out["state_revoked"] = state(c, uid)
        out["encrypt_revoked_refused"] = refused(c.encrypt, b"x", uid=uid, cryptographic_parameters=GCM)
        out["decrypt_revoked"] = c.decrypt(ct, uid=uid, cryptographic_parameters=GCM, iv_counter_nonce=iv).decode()
        c.destroy(uid)
        out["state_destroyed"] = state(c, uid)
        out["decrypt_destroyed_refused"] = refused(c.decrypt, ct, uid=uid, cryptographic_parameters=GCM, iv_counter_nonce=iv)
    return out


def step_use(cfg):
    """Failover: Locate, Get Attributes, Get, Encrypt and Decrypt of a key
    made elsewhere, through whichever server of the list answers."""
    out = {}
    with connect(cfg) as c:
        out["located"] = c.locate(attributes=[c.attribute_factory.create_attribute(enums.AttributeType.NAME, cfg["name"])])
        out["state"] = state(c, cfg["uid"])
        key = c.get(cfg["uid"])
        ct, iv = bytes.fromhex(cfg["ciphertext"]), bytes.fromhex(cfg["iv"])
        out["local_decrypt"] = AESGCM(key.value).decrypt(iv, ct, None).decode()
        out["server_decrypt"] = c.decrypt(ct, uid=cfg["uid"], cryptographic_parameters=GCM, iv_counter_nonce=iv).decode()
        ct2, iv2 = c.encrypt(b"after failover", uid=cfg["uid"], cryptographic_parameters=GCM)
        out["roundtrip"] = c.decrypt(ct2, uid=cfg["uid"], cryptographic_parameters=GCM, iv_counter_nonce=iv2).decode()
        out["host"] = c.proxy.host
    return out


STEPS = {"create": step_create, "get": step_get, "denied": step_denied, "untrusted": step_untrusted,
         "finish": step_finish, "use": step_use}

if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in STEPS:
        fail("usage: pykmip_e2e.py {%s} CONFIG-JSON" % ",".join(STEPS))
    print(json.dumps(STEPS[sys.argv[1]](json.loads(sys.argv[2]))))
