# Writes PyKMIP-encoded (KMIP 1.2) requests, the seeds of FuzzKMIPRequest:
#   /usr/bin/python3 node/testdata/kmip/capture_pykmip.py node/testdata/kmip
import sys
from kmip.core import enums, utils
from kmip.core.factories import attributes as af
from kmip.core import objects as cobjects
from kmip.core.messages import contents, messages
import kmip.core.messages.payloads as payloads
from kmip.core import attributes as kattrs

factory = af.AttributeFactory()
attrs = [factory.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_ALGORITHM, enums.CryptographicAlgorithm.AES),
         factory.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_LENGTH, 256),
         factory.create_attribute(enums.AttributeType.CRYPTOGRAPHIC_USAGE_MASK, [enums.CryptographicUsageMask.ENCRYPT, enums.CryptographicUsageMask.DECRYPT]),
         factory.create_attribute(enums.AttributeType.NAME, "mongodb-cmk")]
tpl = cobjects.TemplateAttribute(attributes=attrs)
def msg(op, payload, n=1):
    hdr = messages.RequestHeader(protocol_version=contents.ProtocolVersion(1, 2), batch_count=contents.BatchCount(n))
    items = [messages.RequestBatchItem(operation=contents.Operation(op), request_payload=payload)]
    m = messages.RequestMessage(request_header=hdr, batch_items=items)
    s = utils.BytearrayStream()
    m.write(s, kmip_version=enums.KMIPVersion.KMIP_1_2)
    return bytes(s.buffer)
out = {
 "pykmip-create": msg(enums.Operation.CREATE, payloads.CreateRequestPayload(enums.ObjectType.SYMMETRIC_KEY, tpl)),
 "pykmip-encrypt": msg(enums.Operation.ENCRYPT, payloads.EncryptRequestPayload(unique_identifier="kmip/0000000000000000", data=b"pykmip plaintext",
      cryptographic_parameters=kattrs.CryptographicParameters(block_cipher_mode=enums.BlockCipherMode.GCM, cryptographic_algorithm=enums.CryptographicAlgorithm.AES))),
 "pykmip-locate": msg(enums.Operation.LOCATE, payloads.LocateRequestPayload(attributes=[factory.create_attribute(enums.AttributeType.NAME, "mongodb-cmk")])),
 "pykmip-get": msg(enums.Operation.GET, payloads.GetRequestPayload(unique_identifier="kmip/0000000000000000")),
}
import os
d = sys.argv[1]
os.makedirs(d, exist_ok=True)
for k, v in out.items():
    open(os.path.join(d, k + ".ttlv"), "wb").write(v)
    print(k, len(v))
