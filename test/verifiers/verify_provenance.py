"""An outside verifier of the factory's provenance, written with libraries we did not write.

  python verify_provenance.py <envelope.json> <ed25519 public key, hex>

securesystemslib (the DSSE reference implementation's home) verifies the envelope's signature with
the factory's public key; in-toto-attestation's Python bindings parse the payload as an in-toto
Statement v1 and its predicate as a SLSA Provenance v1 message (unknown fields refused) and validate
it. Prints one JSON line {"keyid", "subject", "predicateType", "builder", "invocationId"}; exits 1
with the reason when anything does not verify.
"""
import json
import sys

from google.protobuf import json_format
from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
from in_toto_attestation.v1 import statement_pb2
from in_toto_attestation.v1.statement import Statement
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey


def main():
    envelope_file, public_hex = sys.argv[1], sys.argv[2]
    with open(envelope_file, "rb") as fh:
        doc = json.loads(fh.read())
    envelope = Envelope.from_dict(doc)
    if envelope.payload_type != "application/vnd.in-toto+json":
        raise SystemExit(f"payload type {envelope.payload_type!r} is not in-toto")
    keyid = envelope.signatures and next(iter(envelope.signatures))
    key = SSlibKey(keyid, "ed25519", "ed25519", {"public": public_hex})
    try:
        accepted = envelope.verify([key], 1)
    except Exception as err:  # securesystemslib raises VerificationError with its reason
        print(f"signature does not verify: {err}", file=sys.stderr)
        sys.exit(1)
    statement_pb = json_format.Parse(envelope.payload.decode("utf-8"), statement_pb2.Statement())
    statement = Statement.copy_from_pb(statement_pb)
    statement.validate()
    if statement_pb.predicate_type != "https://slsa.dev/provenance/v1":
        raise SystemExit(f"predicate type {statement_pb.predicate_type!r} is not SLSA Provenance v1")
    provenance = json_format.ParseDict(json_format.MessageToDict(statement_pb.predicate), provenance_pb2.Provenance())
    print(
        json.dumps(
            {
                "keyid": list(accepted.keys())[0],
                "subject": [{"name": s.name, "sha256": s.digest["sha256"]} for s in statement_pb.subject],
                "predicateType": statement_pb.predicate_type,
                "builder": provenance.run_details.builder.id,
                "invocationId": provenance.run_details.metadata.invocation_id,
                "dependencies": {d.name: dict(d.digest) for d in provenance.build_definition.resolved_dependencies},
            }
        )
    )


if __name__ == "__main__":
    main()
