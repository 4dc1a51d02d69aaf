#!/usr/bin/env python3
"""Load-test helper (benches/load only): writes single-use DPoP proofs, one request per line.

Each output line is `<access token>\t<DPoP proof>`, ready for dpop.lua. Proofs are ES256 JWS
with the header and claims tokengate's own signer (`tokengate dpop-proof`) produces:
{"typ":"dpop+jwt","alg":"ES256","jwk":{...}} and {jti, htm, htu, iat, ath}. The key file is the
one `tokengate dpop-proof --key FILE` creates (base64 of a PKCS#8 document), so tokens minted
with `dpop_jkt` = `tokengate dpop-proof --key FILE --print-jkt` are bound to it.

Signing one proof costs ~50 us, so a few hundred thousand proofs are made by one invocation,
split across worker processes. `iat` is the generation time: run this right before the load.

Needs only the `cryptography` package (run.sh provides it).
"""

import argparse
import base64
import hashlib
import json
import multiprocessing as mp
import os
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def load_key(path):
    der = base64.b64decode(open(path, "rb").read().strip())
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        sys.exit(f"{path}: not a P-256 key")
    return key


def public_jwk(key):
    nums = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256",
            "x": b64u(nums.x.to_bytes(32, "big")), "y": b64u(nums.y.to_bytes(32, "big"))}


def thumbprint(jwk):
    canonical = '{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}' % (jwk["x"], jwk["y"])
    return b64u(hashlib.sha256(canonical.encode()).digest())


def worker(args):
    key_path, tokens, method, url, start, count, out_path = args
    key = load_key(key_path)
    jwk = public_jwk(key)
    header = b64u(json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk},
                             separators=(",", ":")).encode())
    aths = [b64u(hashlib.sha256(t.encode()).digest()) for t in tokens]
    algo = ec.ECDSA(hashes.SHA256())
    sign = key.sign
    urandom = os.urandom
    lines = []
    for k in range(start, start + count):
        idx = k % len(tokens)
        claims = '{"jti":"%s","htm":"%s","htu":"%s","iat":%d,"ath":"%s"}' % (
            b64u(urandom(16)), method, url, int(time.time()), aths[idx])
        signing_input = header + "." + b64u(claims.encode())
        r, s = decode_dss_signature(sign(signing_input.encode(), algo))
        sig = b64u(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        lines.append(f"{tokens[idx]}\t{signing_input}.{sig}\n")
    with open(out_path, "w") as f:
        f.writelines(lines)
    return out_path


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--key", required=True, help="base64 PKCS#8 P-256 key (tokengate dpop-proof format)")
    p.add_argument("--tokens", help="file of DPoP-bound access tokens, one per line (cycled)")
    p.add_argument("--url", help="htu")
    p.add_argument("--method", default="GET", help="htm")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", help="output file")
    p.add_argument("--print-jkt", action="store_true", help="print the key's RFC 7638 thumbprint")
    a = p.parse_args()
    key = load_key(a.key)
    if a.print_jkt:
        print(thumbprint(public_jwk(key)))
        return
    if not (a.tokens and a.url and a.out):
        p.error("--tokens, --url and --out are required to make proofs")
    tokens = [t.strip() for t in open(a.tokens) if t.strip()]
    procs = max(1, min(a.procs, a.count))
    per = -(-a.count // procs)
    jobs = []
    for i in range(procs):
        start = i * per
        n = min(per, a.count - start)
        if n > 0:
            jobs.append((a.key, tokens, a.method, a.url, start, n, f"{a.out}.part{i}"))
    t0 = time.time()
    if len(jobs) == 1:
        parts = [worker(jobs[0])]
    else:
        with mp.get_context("fork").Pool(len(jobs)) as pool:
            parts = pool.map(worker, jobs)
    with open(a.out, "w") as out:
        for part in parts:
            with open(part) as f:
                out.write(f.read())
            os.unlink(part)
    dt = time.time() - t0
    print(f"gen_proofs: {a.count} proofs in {dt:.1f} s ({a.count / dt:,.0f}/s, {len(jobs)} processes)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
