#!/usr/bin/env python3
"""Drives a Portcullis access API with Ory's generated Oathkeeper client (PyPI:
ory-oathkeeper-client): health and version, lists rules and fetches each by id, fetches the
JSON Web Key Set, and asks /decisions about forward-auth requests given on the command line.

Usage:
    oathkeeper_client.py API_URL [METHOD URL EXPECTED_STATUS]...

Example:
    oathkeeper_client.py http://127.0.0.1:48456 \
        GET http://example.test/public/x 200 GET http://example.test/private/x 401

Exits non-zero when a call fails to deserialize or a decision differs from EXPECTED_STATUS.
"""

import sys
from urllib.parse import urlsplit

import ory_oathkeeper_client as ok
from ory_oathkeeper_client.exceptions import ApiException


def decide(api: ok.ApiApi, method: str, url: str) -> tuple[int, dict]:
    """Asks /decisions as a forward-auth proxy (Traefik, nginx) would."""
    parts = urlsplit(url)
    uri = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {
        "X-Forwarded-Method": method,
        "X-Forwarded-Proto": parts.scheme,
        "X-Forwarded-Host": parts.netloc,
        "X-Forwarded-Uri": uri,
    }
    try:
        response = api.decisions_with_http_info(_headers=headers)
        return response.status_code, dict(response.headers or {})
    except ApiException as e:
        return e.status, dict(e.headers or {})


def main(argv: list[str]) -> int:
    if len(argv) < 2 or (len(argv) - 2) % 3:
        print(__doc__, file=sys.stderr)
        return 2
    client = ok.ApiClient(ok.Configuration(host=argv[1].rstrip("/")))
    api = ok.ApiApi(client)
    meta = ok.MetadataApi(client)
    failures = 0

    print("alive:", meta.is_alive().status)
    print("ready:", meta.is_ready().status)
    print("version:", meta.get_version().version)

    rules = api.list_rules()
    print(f"rules: {len(rules)}")
    for rule in rules:
        one = api.get_rule(rule.id)
        authn = [h.handler for h in one.authenticators or []]
        mutators = [h.handler for h in one.mutators or []]
        print(f"  {one.id}: {one.match.methods} {one.match.url} authenticators={authn} "
              f"authorizer={one.authorizer.handler} mutators={mutators} "
              f"upstream={one.upstream.url if one.upstream else None}")

    jwks = api.get_well_known_json_web_keys()
    print(f"jwks: {len(jwks.keys or [])} key(s)")
    for key in jwks.keys or []:
        private = any(getattr(key, p, None) for p in ("d", "p", "q", "dp", "dq", "qi"))
        print(f"  kid={key.kid} kty={key.kty} alg={key.alg} use={key.use} private={private}")
        if private:
            failures += 1

    for i in range(2, len(argv), 3):
        method, url, expected = argv[i], argv[i + 1], int(argv[i + 2])
        status, headers = decide(api, method, url)
        auth = headers.get("Authorization") or headers.get("authorization") or ""
        shown = f" Authorization: {auth[:32]}..." if auth else ""
        verdict = "ok" if status == expected else f"UNEXPECTED (wanted {expected})"
        print(f"decision {method} {url}: {status}{shown} {verdict}")
        failures += status != expected

    print("result:", "PASS" if not failures else f"FAIL ({failures})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
