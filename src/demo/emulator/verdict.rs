//! The emulator's decision about one token: the check order of research §8, the result codes of
//! research §3.5, the flags and fields of research §3.1/§7 and the `responseContent` grammar of
//! research §3.3. Pure apart from removing expired records, so it is unit-tested with a fixed clock.
//! It never looks at HTTP and never panics on request data.

use std::collections::HashMap;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value};

/// The JWS algorithms advertised in `DPoP` challenges (`algs="…"`, research §3.3).
const DPOP_ALGS: &str = "ES256 ES384 PS256 RS256 EdDSA";

/// One stored access token.
#[derive(Clone, Debug)]
pub(super) struct Record {
    pub subject: Option<String>,
    pub client_id: i64,
    pub client_id_alias: Option<String>,
    pub scopes: Vec<String>,
    pub expires_at_ms: i64,
    pub dpop_jkt: Option<String>,
    pub certificate_thumbprint: Option<String>,
    pub refreshable: bool,
}

/// The request fields the emulator acts on. `null`, absent, `""`, `[]`, `0` and `false` all mean
/// "not requested" because the Java SDK serializes unset fields explicitly (research §2).
pub(super) struct Query<'a> {
    pub token: Option<&'a str>,
    pub scopes: Vec<&'a str>,
    pub subject: Option<&'a str>,
    pub client_certificate: Option<&'a str>,
    pub dpop: Option<&'a str>,
    pub htm: Option<&'a str>,
    pub htu: Option<&'a str>,
    /// `dpopNonceRequired`: the proof must carry the server's current nonce.
    pub dpop_nonce_required: bool,
    /// The emulator's current DPoP nonce (set by the server, not read from the request).
    pub server_nonce: Option<&'a str>,
}

impl<'a> From<&'a Value> for Query<'a> {
    fn from(value: &'a Value) -> Self {
        let text = |key: &str| {
            value
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        };
        let scopes = match value.get("scopes") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .filter(|s| !s.is_empty())
                .collect(),
            Some(Value::String(s)) => s.split_whitespace().collect(),
            _ => Vec::new(),
        };
        Query {
            token: text("token"),
            scopes,
            subject: text("subject"),
            client_certificate: text("clientCertificate"),
            dpop: text("dpop"),
            htm: text("htm"),
            htu: text("htu"),
            dpop_nonce_required: value
                .get("dpopNonceRequired")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            server_nonce: None,
        }
    }
}

/// A result code with its action and RFC 6750 `error` value. Codes and texts come from the
/// catalogue in research §3.5; where the notes mark the action or `error` as inferred, so is it here.
struct Code {
    code: &'static str,
    action: &'static str,
    error: &'static str,
    text: &'static str,
}

const fn code(
    code: &'static str,
    action: &'static str,
    error: &'static str,
    text: &'static str,
) -> Code {
    Code {
        code,
        action,
        error,
        text,
    }
}

const VALID: Code = code(
    "A056001",
    "OK",
    "invalid_request",
    "The access token is valid.",
);
const DB_FAILURE: Code = code(
    "A057101",
    "INTERNAL_SERVER_ERROR",
    "server_error",
    "Failed to get information about the access token from the database.",
);
const NO_TOKEN: Code = code(
    "A057301",
    "BAD_REQUEST",
    "invalid_token",
    "The request does not contain a valid access token.",
);
const UNKNOWN: Code = code(
    "A057302",
    "UNAUTHORIZED",
    "invalid_token",
    "The access token does not exist.",
);
const NO_SCOPES: Code = code(
    "A064301",
    "FORBIDDEN",
    "insufficient_scope",
    "No scopes are associated with the access token.",
);
const SCOPE_MISSING: Code = code(
    "A064302",
    "FORBIDDEN",
    "insufficient_scope",
    "The access token does not cover the required scope '{}'.",
);
const EXPIRED_REFRESHABLE: Code = code(
    "A065301",
    "UNAUTHORIZED",
    "invalid_token",
    "The access token has expired but it can be refreshed using the corresponding refresh token.",
);
const EXPIRED: Code = code(
    "A065303",
    "UNAUTHORIZED",
    "invalid_token",
    "The access token has expired.",
);
const NO_CERTIFICATE: Code = code(
    "A065304",
    "UNAUTHORIZED",
    "invalid_token",
    "The client failed to present a certificate and the access token is MTLS bound.",
);
const CERTIFICATE_MISMATCH: Code = code(
    "A065305",
    "UNAUTHORIZED",
    "invalid_token",
    "The client certificate does not match the certificate thumbprint of the access token.",
);
const CERTIFICATE_MALFORMED: Code = code(
    "A065307",
    "UNAUTHORIZED",
    "invalid_token",
    "The client certificate is malformed.",
);
const NO_DPOP: Code = code(
    "A065308",
    "UNAUTHORIZED",
    "invalid_token",
    "Expected a DPoP header but none was provided.",
);
const DPOP_ERROR: Code = code(
    "A065310",
    "UNAUTHORIZED",
    "invalid_dpop_proof",
    "Error processing the DPoP header: {}",
);
const DPOP_KEY_MISMATCH: Code = code(
    "A065309",
    "UNAUTHORIZED",
    "invalid_dpop_proof",
    "Thumbprint of the provided DPoP key does not match the expected DPoP thumbprint.",
);
// Inferred: no source names the introspection result code for a missing or stale nonce
// (research §9.3); the message and `use_dpop_nonce` follow what Authlete says at /auth/token.
const USE_DPOP_NONCE: Code = code(
    "A065314",
    "UNAUTHORIZED",
    "use_dpop_nonce",
    "The value of the 'nonce' claim in the DPoP proof JWT is different from the expected one.",
);
const NO_SUBJECT: Code = code(
    "A066301",
    "FORBIDDEN",
    "invalid_request",
    "The access token is not associated with any subject.",
);
const SUBJECT_MISMATCH: Code = code(
    "A066302",
    "FORBIDDEN",
    "invalid_request",
    "The subject associated with the access token is different from the required subject.",
);

/// A verdict before rendering: the code, its message with any `{}` filled in, and the required
/// scopes when the challenge must carry `scope="…"`.
struct Verdict {
    code: &'static Code,
    text: String,
    scope: Option<String>,
}

impl Verdict {
    fn new(code: &'static Code) -> Self {
        Self::with(code, "")
    }

    fn with(code: &'static Code, detail: &str) -> Self {
        Self {
            code,
            text: code.text.replace("{}", detail),
            scope: None,
        }
    }
}

/// Which response fields a token-bearing answer shows. What accompanies a non-OK action is not
/// documented (research §9.1); these sets copy the samples in research §7.2 and §7.3.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Detail {
    Brief,
    Forbidden,
    Full,
}

/// `existent`, `usable`, `sufficient`, `refreshable` (research §8).
#[derive(Clone, Copy, Default)]
struct Flags {
    existent: bool,
    usable: bool,
    sufficient: bool,
    refreshable: bool,
}

/// Introspects `query` against `tokens` at time `now_ms`, deleting the record if it has expired.
pub(super) fn introspect(
    tokens: &mut HashMap<String, Record>,
    query: &Query<'_>,
    now_ms: i64,
) -> Value {
    let mut value = decide(tokens, query, now_ms);
    // Research §3.4: when the nonce check applies, the response carries the expected nonce.
    if query.dpop_nonce_required
        && let (Some(nonce), Some(map)) = (query.server_nonce, value.as_object_mut())
    {
        map.insert("dpopNonce".into(), nonce.into());
    }
    value
}

fn decide(tokens: &mut HashMap<String, Record>, query: &Query<'_>, now_ms: i64) -> Value {
    let Some(token) = query.token else {
        return render(
            &Verdict::new(&NO_TOKEN),
            Some(Flags::default()),
            None,
            Detail::Brief,
        );
    };
    let Some(record) = tokens.get(token).cloned() else {
        return render(
            &Verdict::new(&UNKNOWN),
            Some(Flags::default()),
            None,
            Detail::Brief,
        );
    };
    let mut flags = Flags {
        existent: true,
        usable: true,
        sufficient: false,
        refreshable: record.refreshable,
    };
    if record.expires_at_ms <= now_ms {
        // Authlete deletes an expired token on the first introspection that notices it
        // (research §3.5), so the next call answers "does not exist" with existent:false.
        tokens.remove(token);
        let code = if record.refreshable {
            &EXPIRED_REFRESHABLE
        } else {
            &EXPIRED
        };
        flags.usable = false;
        return render(
            &Verdict::new(code),
            Some(flags),
            Some(&record),
            Detail::Brief,
        );
    }
    if let Err(verdict) = check_binding(&record, query, now_ms) {
        return render(&verdict, Some(flags), Some(&record), Detail::Brief);
    }
    if let Err(verdict) = check_scopes(&record, &query.scopes) {
        return render(&verdict, Some(flags), Some(&record), Detail::Forbidden);
    }
    flags.sufficient = true;
    if let Some(wanted) = query.subject {
        let failed = match &record.subject {
            None => Some(&NO_SUBJECT),
            Some(have) if have != wanted => Some(&SUBJECT_MISMATCH),
            Some(_) => None,
        };
        if let Some(code) = failed {
            return render(
                &Verdict::new(code),
                Some(flags),
                Some(&record),
                Detail::Forbidden,
            );
        }
    }
    render(
        &Verdict::new(&VALID),
        Some(flags),
        Some(&record),
        Detail::Full,
    )
}

/// The RFC 7662 view of a token: `active` plus the standard members, `exp` in seconds, and the
/// RFC 7800 `cnf` confirmation (`jkt` for DPoP, `x5t#S256` for certificates).
pub(super) fn rfc7662(tokens: &HashMap<String, Record>, token: &str, now_ms: i64) -> Value {
    let Some(r) = tokens.get(token).filter(|r| r.expires_at_ms > now_ms) else {
        return serde_json::json!({ "active": false });
    };
    let mut m = Map::new();
    m.insert("active".into(), true.into());
    m.insert("scope".into(), r.scopes.join(" ").into());
    m.insert(
        "client_id".into(),
        r.client_id_alias
            .clone()
            .unwrap_or_else(|| r.client_id.to_string())
            .into(),
    );
    if let Some(sub) = &r.subject {
        m.insert("sub".into(), sub.clone().into());
    }
    m.insert("exp".into(), r.expires_at_ms.div_euclid(1000).into());
    let mut cnf = Map::new();
    if let Some(jkt) = &r.dpop_jkt {
        cnf.insert("jkt".into(), jkt.clone().into());
    }
    if let Some(x5t) = &r.certificate_thumbprint {
        cnf.insert("x5t#S256".into(), x5t.clone().into());
    }
    let token_type = if r.dpop_jkt.is_some() {
        "DPoP"
    } else {
        "Bearer"
    };
    m.insert("token_type".into(), token_type.into());
    if !cnf.is_empty() {
        m.insert("cnf".into(), Value::Object(cnf));
    }
    Value::Object(m)
}

/// `INTERNAL_SERVER_ERROR` with no token fields, as in research §7.5.
pub(super) fn internal_server_error() -> Value {
    render(&Verdict::new(&DB_FAILURE), None, None, Detail::Brief)
}

fn check_binding(record: &Record, query: &Query<'_>, now_ms: i64) -> Result<(), Verdict> {
    check_certificate(record, query.client_certificate)?;
    match (&record.dpop_jkt, query.dpop) {
        (None, _) => Ok(()),
        // Authlete enforces the binding even when no proof is sent (research §4, go-sdk test).
        (Some(_), None) => Err(Verdict::new(&NO_DPOP)),
        (Some(jkt), Some(proof)) => check_dpop(jkt, proof, query, now_ms),
    }
}

/// DPoP proof verification as Authlete does it when `dpop`, `htm` and `htu` are sent (research §8):
/// `typ`, an asymmetric `alg`, the signature with the header `jwk`, `htm`/`htu` against the
/// request fields, `ath` = b64url(SHA-256(token)), the `iat` window, `jti` replay, and the key's
/// RFC 7638 thumbprint against the token's `jkt` (A065309). The checks reuse tokengate's verifier
/// with Authlete's advertised algorithms; the emulator keeps its own replay store, because
/// Authlete accepts a proof that the resource server has also checked (research §8).
fn check_dpop(jkt: &str, proof: &str, query: &Query<'_>, now_ms: i64) -> Result<(), Verdict> {
    use crate::auth::dpop::{Alg, DpopSettings, ProofTarget, Verifier, canonical_origin};
    use crate::path::NormalizedPath;
    static VERIFIER: std::sync::OnceLock<Verifier> = std::sync::OnceLock::new();
    let verifier = VERIFIER.get_or_init(|| {
        Verifier::new(DpopSettings {
            nonce: crate::auth::dpop::NonceMode::None,
            algs: Alg::DEFAULT_ALLOWED.to_vec(),
            max_age: std::time::Duration::from_secs(60),
            clock_skew: std::time::Duration::from_secs(5),
            max_proof_bytes: 16_384,
            max_jti_bytes: 256,
        })
    });
    let refuse = |why: &str| Verdict::with(&DPOP_ERROR, why);
    let (Some(htm), Some(htu), Some(token)) = (query.htm, query.htu, query.token) else {
        return Err(refuse("htm and htu are required with dpop"));
    };
    let htu = htu.split(['?', '#']).next().unwrap_or("");
    let (scheme, rest) = htu
        .split_once("://")
        .ok_or_else(|| refuse("htu is not an absolute URL"))?;
    let (authority, path) = rest
        .find('/')
        .map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let origin =
        canonical_origin(scheme, authority).ok_or_else(|| refuse("htu is not an http(s) URL"))?;
    let path = NormalizedPath::parse(path).map_err(|_| refuse("htu has an invalid path"))?;
    let target = ProofTarget {
        method: htm,
        origin: &origin,
        path: &path,
        access_token: token,
        now: now_ms.div_euclid(1000),
    };
    let verified = verifier
        .verify(proof, &target)
        .map_err(|e| refuse(&e.to_string()))?;
    if verified.jkt != jkt {
        return Err(Verdict::new(&DPOP_KEY_MISMATCH));
    }
    if query.dpop_nonce_required && verified.nonce.as_deref() != query.server_nonce {
        return Err(Verdict::new(&USE_DPOP_NONCE));
    }
    Ok(())
}

/// RFC 8705 §3.1: the token is bound to `x5t#S256`, the base64url SHA-256 of the DER certificate.
fn check_certificate(record: &Record, pem: Option<&str>) -> Result<(), Verdict> {
    let Some(bound) = &record.certificate_thumbprint else {
        return Ok(());
    };
    let Some(pem) = pem else {
        return Err(Verdict::new(&NO_CERTIFICATE));
    };
    let Some(der) = pem_to_der(pem) else {
        return Err(Verdict::new(&CERTIFICATE_MALFORMED));
    };
    if certificate_thumbprint(&der) == *bound {
        Ok(())
    } else {
        Err(Verdict::new(&CERTIFICATE_MISMATCH))
    }
}

/// Research §8 step 6: every requested scope must be among the token's scopes.
fn check_scopes(record: &Record, required: &[&str]) -> Result<(), Verdict> {
    if required.is_empty() {
        return Ok(());
    }
    let mut verdict = if record.scopes.is_empty() {
        Verdict::new(&NO_SCOPES)
    } else {
        let missing = required
            .iter()
            .copied()
            .find(|s| !record.scopes.iter().any(|have| have == s));
        match missing {
            Some(missing) => Verdict::with(&SCOPE_MISSING, missing),
            None => return Ok(()),
        }
    };
    // The challenge lists the scopes the endpoint requires (research §3.3, "saying unknown profile").
    verdict.scope = Some(required.join(" "));
    Err(verdict)
}

/// `x5t#S256` of a DER certificate.
pub(super) fn certificate_thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, der))
}

/// The DER bytes of the first `CERTIFICATE` block of a PEM text.
fn pem_to_der(pem: &str) -> Option<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
    let start = pem.find(BEGIN)? + BEGIN.len();
    let rest = pem.get(start..)?;
    let body = rest.get(..rest.find("-----END CERTIFICATE-----")?)?;
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(b64).ok().filter(|der| !der.is_empty())
}

/// The `WWW-Authenticate` value in the grammar of research §3.3: comma-separated, no spaces,
/// every value quoted; `DPoP` scheme plus `algs` for a DPoP-bound token.
fn challenge(verdict: &Verdict, dpop_bound: bool) -> String {
    let code = verdict.code;
    if code.action == "OK" {
        // Research §3.1: on OK it is always this, for the RS to use if it rejects on its own.
        return r#"Bearer error="invalid_request""#.to_owned();
    }
    let scheme = if dpop_bound { "DPoP" } else { "Bearer" };
    let (id, error) = (code.code, code.error);
    let description = quoted(&format!("[{id}] {}", verdict.text));
    let mut out = format!(
        r#"{scheme} error="{error}",error_description="{description}",error_uri="https://docs.authlete.com/#{id}""#
    );
    if let Some(scope) = &verdict.scope {
        out.push_str(&format!(r#",scope="{}""#, quoted(scope)));
    }
    if dpop_bound {
        out.push_str(&format!(r#",algs="{DPOP_ALGS}""#));
    }
    out
}

/// Request-supplied text (a scope name) must not break out of the quoted-string or the header.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn render(
    verdict: &Verdict,
    flags: Option<Flags>,
    record: Option<&Record>,
    detail: Detail,
) -> Value {
    let code = verdict.code;
    let mut m = Map::new();
    m.insert("resultCode".into(), code.code.into());
    let message = format!("[{}] {}", code.code, verdict.text);
    m.insert("resultMessage".into(), message.into());
    m.insert("action".into(), code.action.into());
    let dpop_bound = record.is_some_and(|r| r.dpop_jkt.is_some());
    m.insert(
        "responseContent".into(),
        challenge(verdict, dpop_bound).into(),
    );
    if let Some(f) = flags {
        m.insert("existent".into(), f.existent.into());
        m.insert("usable".into(), f.usable.into());
        m.insert("sufficient".into(), f.sufficient.into());
        m.insert("refreshable".into(), f.refreshable.into());
    }
    let Some(r) = record else {
        return Value::Object(m);
    };
    m.insert("clientId".into(), r.client_id.into());
    if let Some(subject) = &r.subject {
        m.insert("subject".into(), subject.as_str().into());
    }
    if detail != Detail::Brief {
        m.insert("scopes".into(), r.scopes.clone().into());
    }
    if detail != Detail::Forbidden {
        m.insert("expiresAt".into(), r.expires_at_ms.into());
    }
    if detail == Detail::Full {
        if let Some(alias) = &r.client_id_alias {
            m.insert("clientIdAlias".into(), alias.as_str().into());
        }
        m.insert("clientIdAliasUsed".into(), false.into());
        let grant = if r.subject.is_some() {
            "AUTHORIZATION_CODE"
        } else {
            "CLIENT_CREDENTIALS"
        };
        m.insert("grantType".into(), grant.into());
        if let Some(thumbprint) = &r.certificate_thumbprint {
            m.insert("certificateThumbprint".into(), thumbprint.as_str().into());
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        Record {
            subject: Some("john".into()),
            client_id: 1,
            client_id_alias: None,
            scopes: vec!["a".into()],
            expires_at_ms: 10_000,
            dpop_jkt: None,
            certificate_thumbprint: None,
            refreshable: false,
        }
    }

    fn query(token: &str) -> Query<'_> {
        Query {
            token: Some(token),
            scopes: Vec::new(),
            subject: None,
            client_certificate: None,
            dpop: None,
            htm: None,
            htu: None,
            dpop_nonce_required: false,
            server_nonce: None,
        }
    }

    #[test]
    fn expiry_is_judged_against_the_given_clock_and_deletes_the_record() {
        let mut tokens = HashMap::from([("t".to_owned(), record())]);
        assert_eq!(introspect(&mut tokens, &query("t"), 9_999)["action"], "OK");
        assert_eq!(
            introspect(&mut tokens, &query("t"), 10_000)["resultCode"],
            "A065303"
        );
        assert!(tokens.is_empty());
    }

    #[test]
    fn challenge_values_cannot_break_out_of_their_quotes() {
        let mut tokens = HashMap::from([("t".to_owned(), record())]);
        let mut q = query("t");
        q.scopes = vec!["x\"y\\z\r\n"];
        let value = introspect(&mut tokens, &q, 0);
        let challenge = value["responseContent"].as_str().unwrap();
        assert!(challenge.ends_with(r#",scope="x\"y\\z""#), "{challenge}");
        assert!(!challenge.contains('\n'));
    }

    #[test]
    fn malformed_pem_is_refused_without_panicking() {
        for pem in [
            "",
            "-----BEGIN CERTIFICATE-----",
            "-----END CERTIFICATE----------BEGIN CERTIFICATE-----",
            "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----",
            "-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----",
        ] {
            assert_eq!(pem_to_der(pem), None, "{pem:?}");
        }
        let mut bound = record();
        bound.certificate_thumbprint = Some(certificate_thumbprint(b"x"));
        let mut tokens = HashMap::from([("t".to_owned(), bound)]);
        let mut q = query("t");
        q.client_certificate = Some("garbage");
        assert_eq!(introspect(&mut tokens, &q, 0)["resultCode"], "A065307");
    }

    #[test]
    fn a_token_without_scopes_fails_any_scope_requirement() {
        let mut bare = record();
        bare.scopes.clear();
        let mut tokens = HashMap::from([("t".to_owned(), bare)]);
        let mut q = query("t");
        q.scopes = vec!["a"];
        let value = introspect(&mut tokens, &q, 0);
        assert_eq!(value["resultCode"], "A064301");
        assert_eq!(value["action"], "FORBIDDEN");
    }
}
