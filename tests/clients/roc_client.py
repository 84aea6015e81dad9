"""A third-party DPoP client for senderbound's resource_server example.

requests-oauth2client (pinned in requirements.txt) gets a DPoP-bound access
token from node-oidc-provider (tests/real_as/as.mjs) with client_credentials,
then calls the resource server with `requests`, the DPoPToken as `auth` (it
signs one proof per request and retries once on a DPoP 401 carrying a
DPoP-Nonce).

    venv/bin/python roc_client.py --issuer http://127.0.0.1:AS --rs http://127.0.0.1:RS \
        --resource https://api.example.test/ [--client-id agent] [--client-secret agent-secret] \
        [--alg ES256|EdDSA] [--nonce-change none|stdin]

The steps, the stdin protocol and the output are those of
oauth4webapi_client.mjs (see README.md): stdout carries at most the line
`awaiting nonce change`, then one JSON line (the summary); diagnostics go to
stderr; exit status 0 when `ok` is true.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import re
import sys
from importlib.metadata import version
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
from requests_oauth2client import ClientSecretBasic, DPoPKey, DPoPToken, OAuth2Client

TIMEOUT = 10


def b64u_json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def decode_jwt(jwt: str) -> tuple[dict, dict]:
    h, p, _ = jwt.split(".")
    return b64u_json(h), b64u_json(p)


def challenge_error(response: requests.Response, param: str = "error") -> str | None:
    m = re.search(rf'(?:^|[\s,]){param}="([^"]*)"', response.headers.get("WWW-Authenticate", ""))
    return m.group(1) if m else None


def describe_proof(headers: Any, token: str | None = None) -> dict:
    header, payload = decode_jwt(headers["DPoP"])
    ath = base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode() if token else None
    auth = headers.get("Authorization")
    return {
        "alg": header.get("alg"),
        "typ": header.get("typ"),
        "jwk_kty": header.get("jwk", {}).get("kty"),
        "jwk_crv": header.get("jwk", {}).get("crv"),
        "htm": payload.get("htm"),
        "htu": payload.get("htu"),
        "has_nonce": "nonce" in payload,
        "has_ath": "ath" in payload,
        "ath_ok": (payload.get("ath") == ath) if token else None,
        "authorization_scheme": auth.split(" ")[0] if auth else None,
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--issuer", required=True)
    p.add_argument("--rs", required=True)
    p.add_argument("--resource", required=True)
    p.add_argument("--client-id", default="agent")
    p.add_argument("--client-secret")
    p.add_argument("--alg", default="ES256")
    p.add_argument("--nonce-change", choices=["none", "stdin"], default="none")
    args = p.parse_args()
    client_secret = args.client_secret or f"{args.client_id}-secret"
    rs_base = args.rs.rstrip("/")

    summary: dict[str, Any] = {
        "client": "requests-oauth2client",
        "version": version("requests-oauth2client"),
        "alg": args.alg,
        "steps": {},
    }
    steps = summary["steps"]

    # Every response the session's transport receives, the library's own
    # nonce retry included (it is sent with `response.connection.send`, past
    # the session and its hooks, but through this adapter).
    seen: list[requests.Response] = []

    class RecordingAdapter(requests.adapters.HTTPAdapter):
        def send(self, request: requests.PreparedRequest, **kw: Any) -> requests.Response:
            response = super().send(request, **kw)
            seen.append(response)
            return response

    session = requests.Session()
    session.mount("http://", RecordingAdapter())
    session.mount("https://", RecordingAdapter())

    # --- key, AS discovery, client_credentials ------------------------------
    dpop_key = DPoPKey.generate(alg=args.alg)
    oauth = OAuth2Client.from_discovery_endpoint(
        issuer=args.issuer,
        auth=ClientSecretBasic(args.client_id, client_secret),  # the AS registered client_secret_basic
        session=session,
        testing=True,  # plain http on 127.0.0.1: skips the https checks of issuer and endpoints
        dpop_bound_access_tokens=True,
        dpop_alg=args.alg,
    )
    seen.clear()
    token = oauth.client_credentials(
        scope="read write",
        resource=args.resource,
        dpop_key=dpop_key,
        requests_kwargs={"timeout": TIMEOUT},
    )
    _, claims = decode_jwt(token.access_token)
    steps["token"] = {
        "statuses": [r.status_code for r in seen],
        "class": type(token).__name__,
        "token_type": token.token_type,
        "cnf_jkt_matches_key": claims.get("cnf", {}).get("jkt") == dpop_key.dpop_jkt,
        "aud": claims.get("aud"),
        "scope": token.scope or claims.get("scope"),
        "proof": describe_proof(seen[-1].request.headers),
    }

    # --- protected resource requests -----------------------------------------
    def call(method: str, path: str, auth: Any = token, **kw: Any) -> tuple[dict, requests.Response | None]:
        """One request with the token as requests auth; records every answer."""
        record: dict[str, Any] = {"statuses": [], "errors": []}
        seen.clear()
        try:
            final = session.request(method, f"{rs_base}{path}", auth=auth, timeout=TIMEOUT, **kw)
        except Exception as exc:  # the library's nonce handling may raise
            record["exception"] = f"{type(exc).__name__}: {exc}"
            final = None
        answers = list(seen)
        for r in answers:
            record["statuses"].append(r.status_code)
            record["errors"].append(challenge_error(r))
            if r.status_code == 401:
                record["nonce_header"] = "DPoP-Nonce" in r.headers
        record["retried"] = len(answers) > 1
        record["status"] = final.status_code if final is not None else None
        record["error"] = challenge_error(final) if final is not None else None
        if record["error"]:
            record["error_description"] = challenge_error(final, "error_description")
        if final is not None and final.ok:
            record["nonce_on_success"] = "DPoP-Nonce" in final.headers
        if final is not None and "DPoP" in final.request.headers:
            record["proof"] = describe_proof(final.request.headers, token.access_token)
        return record, final

    steps["first"], _ = call("GET", "/api/read")
    steps["valid"], valid = call("GET", "/api/read")
    if valid is None or valid.status_code != 200:
        steps["replay"] = {"skipped": "the valid call failed"}
    else:
        # The exact request again: same DPoP proof, same token, same URL.
        sent = valid.request
        replay = requests.request(sent.method, sent.url, headers=dict(sent.headers), timeout=TIMEOUT)
        steps["replay"] = {
            "status": replay.status_code,
            "error": challenge_error(replay),
            "www_authenticate": replay.headers.get("WWW-Authenticate"),
        }
    # A query string: htu must leave it out (RFC 9449 4.2), the server compares without it.
    steps["query"], _ = call("GET", "/api/read?x=1&y=a%20b")
    steps["write"], _ = call("POST", "/api/write", json={"note": "requests-oauth2client"})
    steps["whoami"], whoami = call("GET", "/whoami")
    if whoami is not None and whoami.ok:
        try:
            sender = whoami.json()
        except ValueError:
            sender = whoami.text
        steps["whoami"]["sender"] = sender
        steps["whoami"]["jkt_matches_key"] = isinstance(sender, dict) and sender.get("jkt") == dpop_key.dpop_jkt

    # A token the server refuses (signature broken), through the library: how
    # it handles a DPoP 401 that is not use_dpop_nonce. Informational.
    broken = token.access_token[:-4] + ("AAAA" if not token.access_token.endswith("AAAA") else "BBBB")
    bad = DPoPToken(access_token=broken, _dpop_key=dpop_key)
    steps["bad_token"], _ = call("GET", "/api/read", auth=bad)

    # --- the resource server's nonce changes ---------------------------------
    if args.nonce_change == "stdin":
        before = rs_base
        sys.stdout.write("awaiting nonce change\n")
        sys.stdout.flush()
        line = sys.stdin.readline().strip()
        if line:
            rs_base = line.rstrip("/")
        record, _ = call("GET", "/api/read")
        u, v = urlsplit(before), urlsplit(rs_base)
        record["same_origin"] = (u.scheme, u.netloc) == (v.scheme, v.netloc)
        steps["nonce_change"] = {"mode": args.nonce_change, **record}

    # --- verdict --------------------------------------------------------------
    checks = {
        "token_dpop_bound": str(steps["token"]["token_type"]).lower() == "dpop"
        and steps["token"]["cnf_jkt_matches_key"],
        "first_ok": steps["first"]["status"] == 200,
        "valid_ok": steps["valid"]["status"] == 200 and len(steps["valid"]["statuses"]) == 1,
        "replay_refused": steps.get("replay", {}).get("status") == 401
        and steps["replay"]["error"] == "invalid_dpop_proof",
        "query_ok": steps["query"]["status"] == 200 and "?" not in steps["query"].get("proof", {}).get("htu", "?"),
        "write_ok": steps["write"]["status"] == 200,
        "whoami_ok": steps["whoami"]["status"] == 200,
    }
    if "nonce_change" in steps:
        c = steps["nonce_change"]
        checks["nonce_change_recovered"] = (
            c["status"] == 200
            and len(c["statuses"]) <= 2
            and (len(c["statuses"]) == 1 or c["errors"][0] == "use_dpop_nonce")
        )
    summary["checks"] = checks
    summary["ok"] = all(checks.values())
    sys.stdout.write(json.dumps(summary) + "\n")
    sys.stdout.flush()
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
