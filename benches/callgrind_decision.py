#!/usr/bin/env python3
"""Instructions per request of the Layer's decision against the proof's
signature, from one callgrind run of a `layer_cached_token` bench
(docs/benchmarks.md, "The header read once").

    valgrind --tool=callgrind --callgrind-out-file=cg.out \
      target/release/deps/dpop-<hash> --bench 'RS256/aws-lc-rs/layer_cached_token$' --profile-time 2
    callgrind_annotate --threshold=100 --inclusive=yes --tree=calling cg.out > cg.tree
    benches/callgrind_decision.py cg.tree

The decision is the `SenderBound::call` future's inclusive count minus the
token verifier's (the token is verified once, then cached), divided by the
number of proofs checked; the signature is `PublicJwk::verify` as called
by `ProofPolicy::verify`, per proof.
"""
import re
import sys

lines = open(sys.argv[1]).read().split("\n")


def block(name):
    """The caller line of `name` and its callees."""
    for i, line in enumerate(lines):
        if "*  ???:" + name in line:
            return lines[i : lines.index("", i)]
    return []


def count(line):
    return int(line.split()[0].replace(",", ""))


decision = block(
    "<senderbound::service::SenderBound<S> as tower_service::Service"
    "<http::request::Request<ReqBody>>>::call::{{closure}} "
)
route = block("senderbound::tokens::issuers::IssuerRouter::route::{{closure}} ")
proof = block("senderbound_core::proof::ProofPolicy::verify ")
calls = next(
    int(re.search(r"\(([\d,]+)x\)", l).group(1).replace(",", ""))
    for l in decision[1:]
    if "ProofPolicy::verify" in l
)
signature = next(count(l) for l in proof[1:] if "PublicJwk::verify" in l) / calls
total = (count(decision[0]) - (count(route[0]) if route else 0)) / calls
print(
    f"proofs {calls}: signature {signature / 1000:.1f}k, decision {total / 1000:.1f}k "
    f"({total / signature:.3f}x), above the signature {(total - signature) / 1000:.1f}k"
)
for line in decision[1:9]:
    name = line.split("???:")[-1].split(" [")[0]
    print(f"  {count(line) / calls / 1000:8.1f}k  {name[:90]}")
