"""What signed self-claims cost per packet: bytes on the wire and receiver CPU, signed
against unsigned, in one run.

    .venv/bin/python bench/claim_cost.py [--packets 3000] [--repeats 5] [--members 20]

Bytes: the protobuf encoding of a gossip packet carrying one alive claim, of a push-pull
table of N members, of the join answer (table plus certificates), with and without
signatures. CPU: a membership core receiving decoded-from-the-wire packets each carrying
an alive claim that takes effect (a higher incarnation of a known member, so the
signature is checked every time), with the agent's ECDSA keys against a core whose keys
accept any claim (the rule switched off: what the core cost before signatures). Repeats
alternate the two; medians are reported with the ratio. Also: sign and verify alone, and
checking a certificate the first time it arrives and once it is held.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from skyfleet._generated.skyfleet.v1 import membership_pb2 as pb
from skyfleet.config.membership import MembershipConfig
from skyfleet.membership.claims import Verdict, alive_claim
from skyfleet.membership.messages import Alive, NodeMeta, Packet, PushPull
from skyfleet.membership.swim import Swim
from skyfleet.security.certs import create_ca, issue_node_cert
from skyfleet.security.claim_keys import CertificateKeys
from skyfleet.transport.codec import packet_from_proto, packet_to_proto


class AcceptAll:
    """The baseline: claim keys that sign nothing and accept everything."""

    def sign(self, claim: bytes) -> bytes:
        return b""

    def verify(self, node: str, claim: bytes, signature: bytes) -> Verdict:
        return Verdict.AUTHENTIC

    def learn(self, certificate: bytes) -> str | None:
        return None

    def certificates(self, node: str) -> tuple[bytes, ...]:
        return ()


def meta(i: int) -> NodeMeta:
    """A member as the cloud stacks name them."""
    return NodeMeta(f"aws-eu-west-1b-{i}", f"10.20.{i // 250}.{i % 250 + 4}:7400",
                    cloud="aws", region="eu-west-1", zone="eu-west-1b")


def wire(packet: Packet) -> bytes:
    """Encoded at clock 0.0: the packets carry claims only, no status ages."""
    return packet_to_proto(packet, 0.0).SerializeToString()


def receive_cost(keys: object, signer: CertificateKeys | None, packets: int) -> float:
    """Microseconds per packet: decode + handle, every claim a new incarnation."""
    target = meta(0)
    core = Swim(meta(99), MembershipConfig(), random.Random(1), keys=keys)  # type: ignore[arg-type]
    first = Alive(target, 1, signer.sign(alive_claim(target, 1)) if signer else b"")
    core.handle(Packet("x", "10.0.0.9:7400", None, (first,)), 0.0)
    frames = []
    for inc in range(2, packets + 2):
        signature = signer.sign(alive_claim(target, inc)) if signer else b""
        frames.append(wire(Packet("x", "10.0.0.9:7400", None, (Alive(target, inc, signature),))))
    start = time.perf_counter()
    for frame in frames:
        core.handle(packet_from_proto(pb.Packet.FromString(frame), 1.0), 1.0)
    elapsed = time.perf_counter() - start
    member = core.member(target.name)
    assert member is not None and member.incarnation == packets + 1, "claims did not apply"
    return elapsed / packets * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if min(args.packets, args.repeats, args.members) < 1:
        parser.error("--packets, --repeats and --members must be at least 1")

    ca, ca_key = create_ca("claim cost CA")
    certs = [issue_node_cert(ca, ca_key, meta(i).name, ["10.20.0.4"]) for i in range(args.members)]
    keys = [CertificateKeys(ca, c, k) for c, k in certs]
    receiver = CertificateKeys(ca, *issue_node_cert(ca, ca_key, meta(99).name, ["10.0.0.9"]))
    ders = [x509.load_pem_x509_certificate(c).public_bytes(serialization.Encoding.DER)
            for c, _ in certs]
    receiver.learn(ders[0])

    # ---- bytes
    one = Alive(meta(0), 1_733_000_000_000)
    signed_one = Alive(one.meta, one.incarnation, keys[0].sign(alive_claim(one.meta, 1)))
    gossip = [wire(Packet("n", "10.0.0.9:7400", None, (a,))) for a in (one, signed_one)]
    tables = []
    for signed in (False, True):
        records = tuple(
            Swim(meta(i), MembershipConfig(), random.Random(i),
                 keys=keys[i] if signed else AcceptAll(),  # type: ignore[arg-type]
                 incarnation=1_733_000_000_000 + i).members()[0].record()
            for i in range(args.members)
        )
        tables.append(Packet("n", "10.0.0.9:7400", PushPull(records, is_reply=True)))
    join_answer = Packet("n", "10.0.0.9:7400", tables[1].body, certificates=tuple(ders))
    sizes = {
        "gossip packet, one alive claim": (len(gossip[0]), len(gossip[1])),
        f"push-pull table, {args.members} members": (len(wire(tables[0])), len(wire(tables[1]))),
        f"join answer, {args.members} members (+ certificates)": (
            len(wire(tables[0])), len(wire(join_answer))),
    }

    # ---- CPU
    unsigned_us, signed_us = [], []
    for rep in range(args.repeats):
        pair = [("unsigned", AcceptAll(), None), ("signed", receiver, keys[0])]
        for label, k, signer in pair if rep % 2 == 0 else pair[::-1]:
            cost = receive_cost(k, signer, args.packets)
            (signed_us if label == "signed" else unsigned_us).append(cost)
    claim = alive_claim(meta(0), 7)
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        keys[0].sign(claim)
    sign_us = (time.perf_counter() - start) / n * 1e6
    signature = keys[0].sign(claim)
    start = time.perf_counter()
    for _ in range(n):
        receiver.verify(meta(0).name, claim, signature)
    verify_us = (time.perf_counter() - start) / n * 1e6
    # Checking a certificate: the first time (fleet CA, dates, role) and once held (a hash).
    fresh = CertificateKeys(ca, *issue_node_cert(ca, ca_key, meta(98).name, ["10.0.0.8"]))
    start = time.perf_counter()
    for der in ders:
        fresh.learn(der)
    learn_us = (time.perf_counter() - start) / len(ders) * 1e6
    start = time.perf_counter()
    for der in ders:
        fresh.learn(der)
    relearn_us = (time.perf_counter() - start) / len(ders) * 1e6

    u, s = statistics.median(unsigned_us), statistics.median(signed_us)
    print(f"machine: {os.cpu_count()} cores, Python {platform.python_version()}")
    print("| what | unsigned | signed | signed/unsigned |")
    print("|---|---|---|---|")
    for what, (a, b) in sizes.items():
        print(f"| {what} (bytes) | {a} | {b} | {b / a:.2f} |")
    print(f"| receive one alive claim: decode + core, median of {args.repeats} x "
          f"{args.packets} (us/packet) | {u:.1f} | {s:.1f} | {s / u:.2f} |")
    print(f"| (spread, us/packet) | {min(unsigned_us):.1f}-{max(unsigned_us):.1f} | "
          f"{min(signed_us):.1f}-{max(signed_us):.1f} | |")
    print(f"\nsign one claim: {sign_us:.1f} us; verify one: {verify_us:.1f} us; "
          f"check a certificate first seen: {learn_us:.1f} us, held: {relearn_us:.1f} us; "
          f"a certificate: {len(ders[0])} bytes")
    if args.out:
        args.out.write_text(json.dumps({
            "sizes": sizes, "unsigned_us": unsigned_us, "signed_us": signed_us,
            "sign_us": sign_us, "verify_us": verify_us, "certificate_bytes": len(ders[0]),
            "learn_us": learn_us, "relearn_us": relearn_us,
            "settings": {k: str(v) for k, v in vars(args).items()},
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
