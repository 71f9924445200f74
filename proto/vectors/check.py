#!/usr/bin/env python3
"""Checks the tatmx protocol test vectors (v2.json) from docs/PROTOCOL.md alone.

Written from the specification, with Python's standard library only, to show that the
document and the vectors are enough to implement the protocol's bytes: the framing, the
message digests, the batch and receipt payloads, RFC 9162 Merkle roots and their inclusion and
consistency proofs, the audit log's leaves, the signed tree head's payload, version
negotiation, and version 1's legacy layouts. Signatures are not checked here: that needs an
ECDSA library (the Rust checker, node/tests/protocol_vectors.rs, verifies every one).

Usage: python3 proto/vectors/check.py [path/to/v2.json]
Exits 0 when every value holds, 1 naming the first that does not.
"""

import hashlib
import json
import struct
import sys
from pathlib import Path


class Mismatch(Exception):
    """A value in the vectors that the specification does not give."""


CHECKS = 0


def expect(what, got, want):
    global CHECKS
    CHECKS += 1
    if got != want:
        raise Mismatch(f"{what}: the file has {got!r}, the specification gives {want!r}")


def sha256(data):
    return hashlib.sha256(data).digest()


def unhex(text):
    return bytes.fromhex(text)


# ---- framing (PROTOCOL.md, "Framing") ----


def frame_v2(context, parts):
    """b"tatmx/v2 " + context + 0x00, then each part as u32 big-endian length + bytes."""
    out = b"tatmx/v2 " + context.encode("ascii") + b"\x00"
    for part in parts:
        out += struct.pack(">I", len(part)) + part
    return out


def frame_v1(context, parts):
    """Version 1 (legacy): b"tatmx/v1 " + context, then 0x00 + part for each part."""
    out = b"tatmx/v1 " + context.encode("ascii")
    for part in parts:
        out += b"\x00" + part
    return out


def u32(n):
    return struct.pack(">I", n)


def u64(n):
    return struct.pack(">Q", n)


def i64(n):
    return struct.pack(">q", n)


def message_digest(kind, payload):
    return sha256(frame_v2("message", [u32(kind), payload]))


def batch_payload(sender, recipient, sent_at_ms, root):
    return frame_v2(
        "batch", [sender.encode(), recipient.encode(), i64(sent_at_ms), root]
    )


def batch_receipt_payload(receiver, sender, received_at_ms, root, outcomes):
    return frame_v2(
        "receipt",
        [receiver.encode(), sender.encode(), i64(received_at_ms), root, outcomes],
    )


def tree_head_payload(team, tree_size, root, at_ms):
    return frame_v2("tree-head", [team.encode(), u64(tree_size), root, i64(at_ms)])


# ---- RFC 9162, section 2.1 ----


def leaf_hash(data):
    return sha256(b"\x00" + data)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def split(n):
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves):
    """MTH over leaf hashes (2.1.1)."""
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = split(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def inclusion_path(m, leaves):
    """PATH(m, D[n]) (2.1.3.1)."""
    n = len(leaves)
    if n <= 1:
        return []
    k = split(n)
    if m < k:
        return inclusion_path(m, leaves[:k]) + [mth(leaves[k:])]
    return inclusion_path(m - k, leaves[k:]) + [mth(leaves[:k])]


def consistency_proof(m, leaves):
    """PROOF(m, D[n]) (2.1.4.1); empty when m is 0 or n."""
    if m == 0 or m == len(leaves):
        return []
    return subproof(m, leaves, True)


def subproof(m, leaves, whole):
    n = len(leaves)
    if m == n:
        return [] if whole else [mth(leaves)]
    k = split(n)
    if m <= k:
        return subproof(m, leaves[:k], whole) + [mth(leaves[k:])]
    return subproof(m - k, leaves[k:], False) + [mth(leaves[:k])]


def verify_inclusion(leaf, index, size, path, root):
    """The verification algorithm of 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old, new, old_root, new_root, proof):
    """The verification algorithm of 2.1.4.2, with the trivial cases PROTOCOL.md names."""
    if old > new:
        return False
    if old == 0:
        return proof == []
    if old == new:
        return proof == [] and old_root == new_root
    path = ([old_root] if old & (old - 1) == 0 else []) + list(proof)
    if not path:
        return False
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


# ---- the audit log ----


def canonical_entry(entry):
    """The entry's columns as a compact JSON array: no spaces, UTF-8, not ASCII-escaped."""
    columns = [
        entry[key]
        for key in (
            "seq",
            "at_ms",
            "kind",
            "actor",
            "peer",
            "referral_id",
            "subject",
            "detail",
        )
    ]
    return json.dumps(columns, ensure_ascii=False, separators=(",", ":"))


# ---- version negotiation ----


def agree(ours, theirs):
    """The highest version both announce; a peer announcing none is a version 1 node."""
    if not theirs:
        return 1
    shared = set(ours) & set(theirs)
    return max(shared) if shared else None


OUTCOMES = {"OUTCOME_ACCEPTED": 1, "OUTCOME_DUPLICATE": 2, "OUTCOME_REFUSED": 3}
KINDS = {
    1: "MESSAGE_KIND_REFERRAL",
    2: "MESSAGE_KIND_STATUS_UPDATE",
    3: "MESSAGE_KIND_RETRACTION",
    4: "MESSAGE_KIND_RETRACTION_ACK",
    5: "MESSAGE_KIND_CASE_MESSAGE",
}
V1_KINDS = {
    1: "referral",
    2: "status-update",
    3: "retraction",
    4: "retraction-ack",
    5: "case-message",
}


def check(v):
    nodes = v["nodes"]
    for role, node in nodes.items():
        expect(
            f"nodes.{role}.certificate_sha256",
            node["certificate_sha256"],
            sha256(unhex(node["certificate"])).hex(),
        )
        expect(
            f"nodes.{role}.identity",
            node["identity"].startswith("spiffe://") and "/team/" in node["identity"],
            True,
        )
    sender, receiver = nodes["sender"], nodes["receiver"]

    # Messages, digests and the batch's tree.
    leaves = []
    for i, m in enumerate(v["messages"]):
        where = f"messages[{i}]"
        payload = unhex(m["payload"])
        expect(f"{where}.kind", m["kind"], KINDS[m["kind_number"]])
        framed = frame_v2("message", [u32(m["kind_number"]), payload])
        expect(f"{where}.digest_input", m["digest_input"], framed.hex())
        digest = message_digest(m["kind_number"], payload)
        expect(f"{where}.digest", m["digest"], digest.hex())
        expect(f"{where}.leaf_hash", m["leaf_hash"], leaf_hash(digest).hex())
        leaves.append(leaf_hash(digest))
    expect("the batch's size", 1 <= len(leaves) <= 256, True)
    root = mth(leaves)
    for i, m in enumerate(v["messages"]):
        path = [unhex(h) for h in m["inclusion_path"]]
        expect(
            f"messages[{i}].inclusion_path",
            m["inclusion_path"],
            [h.hex() for h in inclusion_path(i, leaves)],
        )
        expect(
            f"messages[{i}].inclusion_path verifies",
            verify_inclusion(leaves[i], i, len(leaves), path, root),
            True,
        )

    batch = v["batch"]
    expect("batch.sender", batch["sender"], sender["identity"])
    expect("batch.recipient", batch["recipient"], receiver["identity"])
    expect("batch.leaves", batch["leaves"], [h.hex() for h in leaves])
    expect("batch.root", batch["root"], root.hex())
    expect(
        "batch.payload",
        batch["payload"],
        batch_payload(
            batch["sender"], batch["recipient"], batch["sent_at_ms"], root
        ).hex(),
    )
    expect("batch.signature.scheme", batch["signature"]["scheme"], 1)
    expect(
        "batch.signature.certificate_sha256",
        batch["signature"]["certificate_sha256"],
        sender["certificate_sha256"],
    )

    receipt = v["receipt"]
    expect("receipt.receiver", receipt["receiver"], receiver["identity"])
    expect("receipt.sender", receipt["sender"], sender["identity"])
    expect("receipt.root", receipt["root"], root.hex())
    expect("receipt.results has one per message", len(receipt["results"]), len(leaves))
    outcomes = bytes(OUTCOMES[r["outcome"]] for r in receipt["results"])
    for i, r in enumerate(receipt["results"]):
        expect(
            f"receipt.results[{i}] has a reason exactly when refused",
            "reason" in r,
            r["outcome"] == "OUTCOME_REFUSED",
        )
    expect("receipt.outcomes", receipt["outcomes"], outcomes.hex())
    expect(
        "receipt.payload",
        receipt["payload"],
        batch_receipt_payload(
            receipt["receiver"],
            receipt["sender"],
            receipt["received_at_ms"],
            root,
            outcomes,
        ).hex(),
    )
    expect(
        "receipt.signature.certificate_sha256",
        receipt["signature"]["certificate_sha256"],
        receiver["certificate_sha256"],
    )

    # Each message's proof, as far as it goes without ECDSA.
    for i, p in enumerate(v["proofs"]):
        where = f"proofs[{i}]"
        m = v["messages"][p["message"]]
        digest = message_digest(m["kind_number"], unhex(m["payload"]))
        expect(f"{where}.digest", p["digest"], digest.hex())
        expect(
            f"{where}.path verifies",
            verify_inclusion(
                leaf_hash(digest),
                p["index"],
                p["size"],
                [unhex(h) for h in p["path"]],
                unhex(p["root"]),
            ),
            True,
        )
        expect(f"{where}.batch_signature", p["batch_signature"], batch["signature"]["value"])
        expect(
            f"{where}.receipt_signature",
            p["receipt_signature"],
            receipt["signature"]["value"],
        )
        expect(
            f"{where}.sender_certificate_sha256",
            p["sender_certificate_sha256"],
            sender["certificate_sha256"],
        )
        expect(
            f"{where}.receiver_certificate_sha256",
            p["receiver_certificate_sha256"],
            receiver["certificate_sha256"],
        )
        # The payloads both signatures are made over, rebuilt from the proof's own fields.
        expect(
            f"{where} batch payload",
            batch_payload(p["sender"], p["recipient"], p["sent_at_ms"], unhex(p["root"])).hex(),
            batch["payload"],
        )
        expect(
            f"{where} receipt payload",
            batch_receipt_payload(
                p["recipient"],
                p["sender"],
                p["received_at_ms"],
                unhex(p["root"]),
                unhex(p["outcomes"]),
            ).hex(),
            receipt["payload"],
        )
        expect(
            f"{where}.acknowledged",
            p["acknowledged"],
            unhex(p["outcomes"])[p["index"]] in (1, 2),
        )

    # The audit log.
    log = v["audit_log"]
    audit_leaves = []
    for i, e in enumerate(log["entries"]):
        where = f"audit_log.entries[{i}]"
        expect(f"{where}.seq", e["seq"], i + 1)
        canonical = canonical_entry(e)
        expect(f"{where}.canonical_json", e["canonical_json"], canonical)
        entry_leaf = sha256(canonical.encode("utf-8"))
        expect(f"{where}.entry_leaf", e["entry_leaf"], entry_leaf.hex())
        expect(f"{where}.leaf_hash", e["leaf_hash"], leaf_hash(entry_leaf).hex())
        audit_leaves.append(leaf_hash(entry_leaf))
    for r in log["roots"]:
        expect(
            f"audit_log.roots size {r['size']}",
            r["root"],
            mth(audit_leaves[: r["size"]]).hex(),
        )
    for c in log["inclusion"]:
        where = f"audit_log.inclusion index {c['index']} size {c['size']}"
        tree = audit_leaves[: c["size"]]
        expect(f"{where}.leaf_hash", c["leaf_hash"], tree[c["index"]].hex())
        expect(f"{where}.root", c["root"], mth(tree).hex())
        expect(f"{where}.path", c["path"], [h.hex() for h in inclusion_path(c["index"], tree)])
        expect(
            f"{where} verifies",
            verify_inclusion(
                tree[c["index"]],
                c["index"],
                c["size"],
                [unhex(h) for h in c["path"]],
                mth(tree),
            ),
            True,
        )
    for c in log["consistency"]:
        where = f"audit_log.consistency {c['old_size']} to {c['new_size']}"
        old_root = mth(audit_leaves[: c["old_size"]])
        new_root = mth(audit_leaves[: c["new_size"]])
        expect(f"{where}.old_root", c["old_root"], old_root.hex())
        expect(f"{where}.new_root", c["new_root"], new_root.hex())
        proof = consistency_proof(c["old_size"], audit_leaves[: c["new_size"]])
        expect(f"{where}.proof", c["proof"], [h.hex() for h in proof])
        expect(
            f"{where} verifies",
            verify_consistency(
                c["old_size"],
                c["new_size"],
                old_root,
                new_root,
                [unhex(h) for h in c["proof"]],
            ),
            True,
        )
        if 0 < c["old_size"] < c["new_size"]:
            # A rewritten history does not verify: change the old tree's last leaf.
            forged = audit_leaves[: c["old_size"] - 1] + [leaf_hash(b"rewritten")]
            expect(
                f"{where} refuses a rewritten history",
                verify_consistency(
                    c["old_size"], c["new_size"], mth(forged), new_root, proof
                ),
                False,
            )
    head = log["tree_head"]
    expect("audit_log.tree_head.team", head["team"], log["team"])
    expect(
        "audit_log.tree_head.root",
        head["root"],
        mth(audit_leaves[: head["tree_size"]]).hex(),
    )
    expect(
        "audit_log.tree_head.payload",
        head["payload"],
        tree_head_payload(
            head["team"], head["tree_size"], unhex(head["root"]), head["at_ms"]
        ).hex(),
    )

    # Version negotiation.
    ours = v["version_negotiation"]["ours"]
    for c in v["version_negotiation"]["cases"]:
        expect(f"version_negotiation {c['theirs']}", c["agreed"], agree(ours, c["theirs"]))

    # Version 1, legacy.
    v1 = v["v1"]
    m = v["messages"][v1["message"]]
    payload = unhex(m["payload"])
    expect("v1.kind", v1["kind"], V1_KINDS[m["kind_number"]])
    expect("v1.digest", v1["digest"], sha256(payload).hex())
    expect(
        "v1.message_payload",
        v1["message_payload"],
        frame_v1("message", [v1["kind"].encode(), payload]).hex(),
    )
    expect(
        "v1.receipt_payload",
        v1["receipt_payload"],
        frame_v1(
            "receipt",
            [v1["message_id"].encode(), sha256(payload), i64(v1["received_at_ms"])],
        ).hex(),
    )
    chain = bytes(32)
    heads = []
    for e in log["entries"]:
        chain = sha256(chain + sha256(canonical_entry(e).encode("utf-8")))
        heads.append(chain.hex())
    expect("v1.chain_heads", v1["chain_heads"], heads)
    cp = v1["checkpoint"]
    expect("v1.checkpoint.head_hash", cp["head_hash"], heads[cp["seq"] - 1])
    expect(
        "v1.checkpoint.payload",
        cp["payload"],
        frame_v1(
            "checkpoint",
            [cp["team"].encode(), u64(cp["seq"]), unhex(cp["head_hash"]), i64(cp["at_ms"])],
        ).hex(),
    )


def main():
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("v2.json")
    vectors = json.loads(path.read_text(encoding="utf-8"))
    try:
        check(vectors)
    except (Mismatch, KeyError, IndexError, ValueError) as problem:
        print(f"{path}: FAILED: {problem}", file=sys.stderr)
        return 1
    print(f"{path}: {CHECKS} checks hold (signatures are checked by the Rust checker)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
