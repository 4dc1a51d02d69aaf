//! TLS termination with rustls (aws-lc-rs provider): certificate and key from PEM files, ALPN
//! `h2` then `http/1.1`, and, with `client_ca_file`, client certificates requested and verified
//! against that CA (RFC 8705 mutual TLS; a client without a certificate may still connect, and
//! only certificate-bound tokens then fail).
//!
//! Files are read when the configuration is compiled, so a reload (SIGHUP) picks up rotated
//! certificates; errors name the file. Private keys are never logged.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::HeaderName;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// TLS settings compiled from `tls:`.
#[derive(Clone)]
pub struct TlsConfig {
    pub server: Arc<rustls::ServerConfig>,
    /// Whether client certificates are requested (RFC 8705).
    pub client_auth: bool,
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsConfig {{ client_auth: {} }}", self.client_auth)
    }
}

/// What went wrong with a TLS file: (which field, why).
pub type TlsError = (&'static str, String);

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read_certs(field: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| (field, format!("cannot read {}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            (
                field,
                format!("{}: not PEM certificates: {e}", path.display()),
            )
        })?;
    if certs.is_empty() {
        return Err((field, format!("{}: no certificate found", path.display())));
    }
    Ok(certs)
}

/// CA certificates from a PEM file (for an upstream's `ca_file`).
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    read_certs("ca_file", path).map_err(|(_, reason)| reason)
}

/// The TLS client configuration for one upstream: system roots plus `extra_roots`, ALPN left to
/// the connector (h2 and http/1.1).
pub fn upstream_client_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    for cert in extra_roots {
        roots.add(cert.clone()).map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        // Not fatal: the gateway still starts and this upstream answers 502 until a CA is
        // configured, which is easier to diagnose than a refusal to start.
        tracing::warn!(
            "no trusted CA certificates for an https upstream (system store empty and no ca_file)"
        );
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// Builds the server configuration from the files named in the config.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
    client_ca_file: Option<&Path>,
) -> Result<TlsConfig, TlsError> {
    let certs = read_certs("tls.cert_file", cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| {
        (
            "tls.key_file",
            format!("{}: no usable private key: {e}", key_file.display()),
        )
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ("tls", e.to_string()))?;
    let builder = match client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca_file) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in read_certs("tls.client_ca_file", ca_file)? {
                roots
                    .add(ca)
                    .map_err(|e| ("tls.client_ca_file", format!("{}: {e}", ca_file.display())))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| ("tls.client_ca_file", e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut server = builder.with_single_cert(certs, key).map_err(|e| {
        (
            "tls.key_file",
            format!("the key does not fit the certificate: {e}"),
        )
    })?;
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsConfig {
        server: Arc::new(server),
        client_auth: client_ca_file.is_some(),
    })
}

/// A client certificate presented on this connection (or, from a trusted proxy, in a header).
#[derive(Clone)]
pub struct ClientCertificate {
    /// RFC 8705 section 3.1 `x5t#S256`: base64url SHA-256 of the DER certificate.
    pub thumbprint: String,
    /// PEM, as Authlete's `clientCertificate` expects.
    pub pem: String,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClientCertificate {{ x5t#S256: {} }}", self.thumbprint)
    }
}

impl ClientCertificate {
    pub fn from_der(der: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
        let body = STANDARD.encode(der);
        let mut pem = String::with_capacity(body.len() + 64);
        pem.push_str("-----BEGIN CERTIFICATE-----\n");
        for chunk in body.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----\n");
        Self {
            thumbprint: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            pem,
        }
    }

    /// A certificate forwarded by a TLS-terminating proxy: RFC 9440 `Client-Cert`
    /// (`:base64-DER:`), or URL-escaped PEM as nginx's `$ssl_client_escaped_cert` writes it.
    pub fn from_header_value(value: &str) -> Option<Self> {
        let value = value.trim();
        if let Some(inner) = value.strip_prefix(':').and_then(|v| v.strip_suffix(':')) {
            return STANDARD.decode(inner).ok().map(|der| Self::from_der(&der));
        }
        let pem = percent_decode(value)?;
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
        Some(Self::from_der(der.as_ref()))
    }
}

fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The configured header that carries a proxy-forwarded client certificate.
#[derive(Debug, Clone)]
pub struct ForwardedCertHeader(pub HeaderName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_is_base64url_sha256_of_der_and_header_forms_agree() {
        let der = b"certificate bytes";
        let cert = ClientCertificate::from_der(der);
        let expected = URL_SAFE_NO_PAD
            .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref());
        assert_eq!(cert.thumbprint, expected);
        let rfc9440 = format!(":{}:", STANDARD.encode(der));
        assert_eq!(
            ClientCertificate::from_header_value(&rfc9440)
                .unwrap()
                .thumbprint,
            expected
        );
        let escaped = cert
            .pem
            .replace('\n', "%0A")
            .replace(' ', "%20")
            .replace('+', "%2B")
            .replace('/', "%2F");
        assert_eq!(
            ClientCertificate::from_header_value(&escaped)
                .unwrap()
                .thumbprint,
            expected
        );
        assert!(ClientCertificate::from_header_value("garbage").is_none());
    }
}
