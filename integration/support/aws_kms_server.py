"""A small AWS KMS test server: Ed25519 signing keys over KMS's real JSON protocol.

moto 5.2.6 has no ``ECC_NIST_EDWARDS25519`` keys, so the suite runs this
server as a process (``python -m integration.support.aws_kms_server --port N
[--state FILE] [--region R]``) and the real boto3 ``kms`` client talks to it
unchanged through ``endpoint_url=``. It speaks what AWS KMS speaks:
``POST /`` with ``X-Amz-Target: TrentService.<Operation>`` and an
``application/x-amz-json-1.1`` body; blobs are base64; errors are HTTP 400
(500 for ``KMSInternalException``) with ``{"__type": ..., "message": ...}``.
Like moto, it does not check SigV4 signatures.

Operations: CreateKey (``ECC_NIST_EDWARDS25519`` / ``SIGN_VERIFY``; ``Origin``
``AWS_KMS`` or ``EXTERNAL``), DescribeKey, GetPublicKey (DER
SubjectPublicKeyInfo), Sign (``ED25519_SHA_512`` with ``MessageType=RAW``, at
most 4096 bytes), Verify, CreateAlias, UpdateAlias, DeleteAlias, ListAliases,
EnableKey, DisableKey, ScheduleKeyDeletion, and bring-your-own-key
(GetParametersForImport with ``RSA_AES_KEY_WRAP_SHA_256``, ImportKeyMaterial).
A key id may be given as its id, key ARN, alias name or alias ARN.

Fault hooks, set with ``POST /_control`` (``{"faults": {...}}``; the answer
is the hooks and the call counts): ``deny`` (key ids, key ARNs or alias names;
``"*"`` for all) answers ``AccessDeniedException``; ``throttle`` and
``internal`` (counts) answer ``ThrottlingException`` / ``KMSInternalException``
to that many next calls; ``corrupt_signatures`` (count) flips a bit in the
next signatures. Stopping and starting the process is the outage; with
``--state`` the keys and aliases survive a restart.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap_with_padding

__all__ = ["AWSError", "FakeKMS", "main", "serve"]

ACCOUNT = "111122223333"
SPEC = "ECC_NIST_EDWARDS25519"
USAGE = "SIGN_VERIFY"
ALGORITHM = "ED25519_SHA_512"
ALGORITHMS = [ALGORITHM, "ED25519_PH_SHA_512"]
MAX_MESSAGE = 4096


class AWSError(Exception):
    """An AWS-shaped error answer."""

    def __init__(self, kind: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status


@dataclass
class _Key:
    key_id: str
    arn: str
    origin: str
    created: float
    state: str
    seed: str = ""  # hex of the Ed25519 private key; '' while PendingImport
    deletion: float | None = None

    def private(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(self.seed))


@dataclass
class _State:
    keys: dict[str, _Key] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)


class FakeKMS:
    """The keys, aliases and fault hooks, and one method per operation."""

    def __init__(self, region: str, state_file: str | None = None) -> None:
        self.region = region
        self.state_file = state_file
        self.lock = threading.Lock()
        self.state = _State()
        self.faults: dict[str, Any] = {"deny": [], "throttle": 0, "internal": 0,
                                       "corrupt_signatures": 0}
        self.counts: dict[str, int] = {}
        self._wrapping = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if state_file and os.path.exists(state_file):
            with open(state_file, encoding="utf-8") as f:
                doc = json.load(f)
            self.state = _State({k: _Key(**v) for k, v in doc["keys"].items()}, doc["aliases"])

    # -- plumbing ----------------------------------------------------------------

    def call(self, op: str, body: dict[str, Any]) -> dict[str, Any]:
        """Run operation ``op`` (faults first); save the state when a file is set."""
        handler: Callable[[dict[str, Any]], dict[str, Any]] | None = getattr(
            self, "op_" + op, None)
        if handler is None:
            raise AWSError("UnknownOperationException", f"unknown operation {op}")
        with self.lock:
            self.counts[op] = self.counts.get(op, 0) + 1
            if self._take("throttle"):
                raise AWSError("ThrottlingException", "Rate exceeded")
            if self._take("internal"):
                raise AWSError("KMSInternalException", "internal error", 500)
            answer = handler(body)
            if self.state_file:
                doc = {"keys": {k: asdict(v) for k, v in self.state.keys.items()},
                       "aliases": self.state.aliases}
                tmp = self.state_file + ".tmp"
                with open(tmp, "w", encoding="utf-8") as f:
                    json.dump(doc, f)
                os.replace(tmp, self.state_file)
            return answer

    def control(self, body: dict[str, Any]) -> dict[str, Any]:
        """Set fault hooks; return them and the call counts."""
        with self.lock:
            self.faults.update(body.get("faults") or {})
            return {"faults": self.faults, "counts": self.counts}

    def _take(self, hook: str) -> bool:
        left = int(self.faults.get(hook) or 0)
        if left <= 0:
            return False
        self.faults[hook] = left - 1
        return True

    def _arn(self, resource: str) -> str:
        return f"arn:aws:kms:{self.region}:{ACCOUNT}:{resource}"

    def _find(self, ref: Any, *, deny: bool = True) -> _Key:
        """The key ``ref`` names (id, key ARN, alias name or alias ARN)."""
        if not isinstance(ref, str) or not ref:
            raise AWSError("ValidationException", "KeyId is required")
        name = ref.split(":", 5)[5] if ref.startswith("arn:") and ref.count(":") >= 5 else ref
        key_id = self.state.aliases.get(name) if name.startswith("alias/") else \
            name.removeprefix("key/")
        if deny:
            denied = self.faults["deny"]
            if "*" in denied or ref in denied or name in denied or key_id in denied:
                raise AWSError("AccessDeniedException",
                               f"User is not authorized to perform this operation on {ref}")
        key = self.state.keys.get(key_id or "")
        if key is None:
            raise AWSError("NotFoundException", f"{ref} is not found.")
        if key.state == "PendingDeletion" and key.deletion is not None \
                and key.deletion <= time.time():
            del self.state.keys[key.key_id]
            raise AWSError("NotFoundException", f"{ref} is not found.")
        return key

    def _usable(self, key: _Key) -> None:
        if key.state == "Disabled":
            raise AWSError("DisabledException", f"{key.arn} is disabled.")
        if key.state != "Enabled":
            raise AWSError("KMSInvalidStateException", f"{key.arn} is {key.state}.")

    def _metadata(self, key: _Key) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "AWSAccountId": ACCOUNT, "KeyId": key.key_id, "Arn": key.arn,
            "CreationDate": key.created, "Enabled": key.state == "Enabled",
            "Description": "", "KeyUsage": USAGE, "KeyState": key.state,
            "Origin": key.origin, "KeyManager": "CUSTOMER", "CustomerMasterKeySpec": SPEC,
            "KeySpec": SPEC, "SigningAlgorithms": ALGORITHMS, "MultiRegion": False,
        }
        if key.deletion is not None:
            meta["DeletionDate"] = key.deletion
        return meta

    # -- keys ----------------------------------------------------------------------

    def op_CreateKey(self, body: dict[str, Any]) -> dict[str, Any]:
        spec = body.get("KeySpec") or body.get("CustomerMasterKeySpec") or "SYMMETRIC_DEFAULT"
        usage = body.get("KeyUsage") or "ENCRYPT_DECRYPT"
        if spec != SPEC or usage != USAGE:
            raise AWSError("UnsupportedOperationException",
                           f"this test server makes only {SPEC} {USAGE} keys, not {spec} {usage}")
        origin = body.get("Origin") or "AWS_KMS"
        if origin not in ("AWS_KMS", "EXTERNAL"):
            raise AWSError("UnsupportedOperationException", f"Origin {origin} is not supported")
        key_id = str(uuid.uuid4())
        seed = ""
        if origin == "AWS_KMS":
            seed = Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                serialization.NoEncryption()).hex()
        key = _Key(key_id, self._arn(f"key/{key_id}"), origin, time.time(),
                   "Enabled" if seed else "PendingImport", seed)
        self.state.keys[key_id] = key
        return {"KeyMetadata": self._metadata(key)}

    def op_DescribeKey(self, body: dict[str, Any]) -> dict[str, Any]:
        return {"KeyMetadata": self._metadata(self._find(body.get("KeyId")))}

    def op_GetPublicKey(self, body: dict[str, Any]) -> dict[str, Any]:
        key = self._find(body.get("KeyId"))
        if key.state in ("PendingImport", "PendingDeletion"):
            raise AWSError("KMSInvalidStateException", f"{key.arn} is {key.state}.")
        if key.state == "Disabled":
            raise AWSError("DisabledException", f"{key.arn} is disabled.")
        der = key.private().public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return {"KeyId": key.arn, "PublicKey": _b64(der), "KeySpec": SPEC,
                "CustomerMasterKeySpec": SPEC, "KeyUsage": USAGE,
                "SigningAlgorithms": ALGORITHMS}

    def _message(self, body: dict[str, Any]) -> bytes:
        if body.get("SigningAlgorithm") != ALGORITHM or body.get("MessageType") != "RAW":
            raise AWSError("ValidationException",
                           f"this test server signs only {ALGORITHM} with MessageType RAW")
        message = _unb64(body.get("Message"), "Message")
        if not 1 <= len(message) <= MAX_MESSAGE:
            raise AWSError("ValidationException",
                           f"Message must be 1 to {MAX_MESSAGE} bytes, got {len(message)}")
        return message

    def op_Sign(self, body: dict[str, Any]) -> dict[str, Any]:
        key = self._find(body.get("KeyId"))
        message = self._message(body)
        self._usable(key)
        signature = bytearray(key.private().sign(message))
        if self._take("corrupt_signatures"):
            signature[0] ^= 1
        return {"KeyId": key.arn, "Signature": _b64(bytes(signature)),
                "SigningAlgorithm": ALGORITHM}

    def op_Verify(self, body: dict[str, Any]) -> dict[str, Any]:
        key = self._find(body.get("KeyId"))
        message = self._message(body)
        self._usable(key)
        try:
            key.private().public_key().verify(_unb64(body.get("Signature"), "Signature"),
                                              message)
        except Exception:
            raise AWSError("KMSInvalidSignatureException", "signature does not verify") from None
        return {"KeyId": key.arn, "SignatureValid": True, "SigningAlgorithm": ALGORITHM}

    def op_EnableKey(self, body: dict[str, Any]) -> dict[str, Any]:
        key = self._find(body.get("KeyId"))
        if key.state not in ("Enabled", "Disabled"):
            raise AWSError("KMSInvalidStateException", f"{key.arn} is {key.state}.")
        key.state = "Enabled"
        return {}

    def op_DisableKey(self, body: dict[str, Any]) -> dict[str, Any]:
        key = self._find(body.get("KeyId"))
        if key.state not in ("Enabled", "Disabled"):
            raise AWSError("KMSInvalidStateException", f"{key.arn} is {key.state}.")
        key.state = "Disabled"
        return {}

    def op_ScheduleKeyDeletion(self, body: dict[str, Any]) -> dict[str, Any]:
        key = self._find(body.get("KeyId"))
        days = int(body.get("PendingWindowInDays") or 30)
        if not 7 <= days <= 30:
            raise AWSError("ValidationException", "PendingWindowInDays must be 7 to 30")
        key.state = "PendingDeletion"
        key.deletion = time.time() + days * 86400
        return {"KeyId": key.arn, "DeletionDate": key.deletion, "KeyState": key.state,
                "PendingWindowInDays": days}

    # -- aliases -------------------------------------------------------------------

    @staticmethod
    def _alias_name(body: dict[str, Any]) -> str:
        name = body.get("AliasName")
        if not isinstance(name, str) or not name.startswith("alias/") or \
                name.startswith("alias/aws/") or len(name) > 256:
            raise AWSError("ValidationException", f"invalid AliasName {name!r}")
        return name

    def op_CreateAlias(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._alias_name(body)
        if name in self.state.aliases:
            raise AWSError("AlreadyExistsException", f"An alias with the name {name} already "
                           "exists")
        self.state.aliases[name] = self._find(body.get("TargetKeyId")).key_id
        return {}

    def op_UpdateAlias(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._alias_name(body)
        if name not in self.state.aliases:
            raise AWSError("NotFoundException", f"Alias {self._arn(name)} is not found.")
        self.state.aliases[name] = self._find(body.get("TargetKeyId")).key_id
        return {}

    def op_DeleteAlias(self, body: dict[str, Any]) -> dict[str, Any]:
        name = self._alias_name(body)
        if self.state.aliases.pop(name, None) is None:
            raise AWSError("NotFoundException", f"Alias {self._arn(name)} is not found.")
        return {}

    def op_ListAliases(self, body: dict[str, Any]) -> dict[str, Any]:
        only = self._find(body["KeyId"]).key_id if body.get("KeyId") else None
        aliases = [{"AliasName": name, "AliasArn": self._arn(name), "TargetKeyId": target}
                   for name, target in sorted(self.state.aliases.items())
                   if only is None or target == only]
        return {"Aliases": aliases, "Truncated": False}

    # -- bring your own key ----------------------------------------------------------

    def op_GetParametersForImport(self, body: dict[str, Any]) -> dict[str, Any]:
        key = self._find(body.get("KeyId"))
        if key.origin != "EXTERNAL":
            raise AWSError("UnsupportedOperationException", f"{key.arn} origin is AWS_KMS")
        if body.get("WrappingAlgorithm") != "RSA_AES_KEY_WRAP_SHA_256" or \
                body.get("WrappingKeySpec") != "RSA_2048":
            raise AWSError("ValidationException",
                           "this test server wraps only RSA_AES_KEY_WRAP_SHA_256 with RSA_2048")
        der = self._wrapping.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return {"KeyId": key.arn, "ImportToken": _b64(key.key_id.encode()),
                "PublicKey": _b64(der), "ParametersValidTo": time.time() + 86400}

    def op_ImportKeyMaterial(self, body: dict[str, Any]) -> dict[str, Any]:
        key = self._find(body.get("KeyId"))
        if _unb64(body.get("ImportToken"), "ImportToken") != key.key_id.encode():
            raise AWSError("InvalidImportTokenException", "the import token is not for this key")
        blob = _unb64(body.get("EncryptedKeyMaterial"), "EncryptedKeyMaterial")
        try:
            ephemeral = self._wrapping.decrypt(blob[:256], padding.OAEP(
                mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
            der = aes_key_unwrap_with_padding(ephemeral, blob[256:])
            private = serialization.load_der_private_key(der, password=None)
        except (ValueError, InvalidUnwrap):
            raise AWSError("IncorrectKeyMaterialException", "cannot unwrap the key") from None
        if not isinstance(private, Ed25519PrivateKey):
            raise AWSError("IncorrectKeyMaterialException", "not an Ed25519 key")
        seed = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption()).hex()
        if key.seed and key.seed != seed:
            raise AWSError("IncorrectKeyMaterialException", "different key material")
        key.seed = seed
        key.state = "Enabled"
        return {}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(value: Any, name: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        raise AWSError("ValidationException", f"{name} is not base64") from None


def serve(port: int, region: str, state_file: str | None) -> ThreadingHTTPServer:
    """A server on ``127.0.0.1:port`` (not started)."""
    store = FakeKMS(region, state_file)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in two writes: without this, Nagle's algorithm
            # and the client's delayed ACK hold every answer back ~40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the fixtures keep the log for failures only

        def _answer(self, status: int, doc: Any) -> None:
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer(200, {"ok": True})

        def do_POST(self) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(size) if size else b"{}"
            try:
                body = json.loads(raw or b"{}")
                if self.path == "/_control":
                    self._answer(200, store.control(body))
                    return
                target = self.headers.get("X-Amz-Target", "")
                service, _, op = target.partition(".")
                if service != "TrentService" or not isinstance(body, dict):
                    raise AWSError("UnknownOperationException", f"unknown target {target!r}")
                self._answer(200, store.call(op, body))
            except AWSError as exc:
                self._answer(exc.status, {"__type": exc.kind, "message": exc.message})
            except (ValueError, KeyError, TypeError) as exc:
                self._answer(400, {"__type": "ValidationException", "message": str(exc)})

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def main(argv: list[str] | None = None) -> None:
    """Run the server until killed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--state", default=None, help="JSON file keeping keys across restarts")
    args = parser.parse_args(argv)
    server = serve(args.port, args.region, args.state)
    server.serve_forever()


if __name__ == "__main__":
    main()
