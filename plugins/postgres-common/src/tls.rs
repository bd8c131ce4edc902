//! TLS to PostgreSQL on rustls, with libpq's `sslmode` semantics:
//!
//! | mode | TLS | certificate chain | host name |
//! | --- | --- | --- | --- |
//! | `disable` | never | - | - |
//! | `prefer` (default) | tried, plain when the server has none | not checked | not checked |
//! | `require` | always | not checked (checked when a CA file is given, as libpq does) | not checked |
//! | `verify-ca` | always | checked against the CA file, else the system's roots | not checked |
//! | `verify-full` | always | checked | checked |
//!
//! `sslmode` and `sslrootcert` may also be given inside the connection string, libpq
//! style; they are taken out before tokio-postgres (which knows only three modes) sees
//! the string.

use std::{fmt, path::Path, sync::Arc};

use rustls::{
    client::{
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        WebPkiServerVerifier,
    },
    crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider},
    pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime},
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

/// How the connection uses TLS (libpq's `sslmode`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Default,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, else plain; the certificate is not checked.
    #[default]
    Prefer,
    /// TLS always; the certificate is not checked (unless a CA file is given).
    Require,
    /// TLS always; the certificate must be signed by a trusted CA.
    VerifyCa,
    /// TLS always; the certificate must be signed by a trusted CA and name the host.
    VerifyFull,
}

impl SslMode {
    /// The name used in configs and connection strings.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// Parses a libpq `sslmode` value.
    pub fn parse(text: &str) -> Option<SslMode> {
        Some(match text {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The mode tokio-postgres negotiates with (it knows no verification levels: those
    /// live in the rustls configuration).
    pub(crate) fn negotiation(self) -> tokio_postgres::config::SslMode {
        match self {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// A PEM file; `field` is the config field that named it (for error messages).
    File {
        /// The path as given.
        path: String,
        /// `ssl_root_cert`, or `connection_string (sslrootcert)`.
        field: String,
    },
    /// The operating system's trust store.
    System,
}

impl fmt::Display for CaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaSource::File { path, .. } => write!(f, "the CA file `{path}`"),
            CaSource::System => f.write_str("the system's trusted CAs"),
        }
    }
}

/// `sslmode` and `sslrootcert` taken out of a connection string, and the string left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Extracted {
    pub(crate) rest: String,
    pub(crate) sslmode: Option<String>,
    pub(crate) sslrootcert: Option<String>,
}

/// Takes `sslmode` and `sslrootcert` out of a URL (`postgres://...?sslmode=...`) or a
/// `key=value` connection string. A string this cannot read is returned unchanged, for
/// tokio-postgres to report what is wrong with it.
pub(crate) fn extract_tls_options(text: &str) -> Extracted {
    let unchanged = || Extracted {
        rest: text.to_string(),
        sslmode: None,
        sslrootcert: None,
    };
    let trimmed = text.trim();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        extract_from_url(trimmed).unwrap_or_else(unchanged)
    } else {
        extract_from_key_values(text).unwrap_or_else(unchanged)
    }
}

/// URL: the query starts at the first `?` after the credentials (tokio-postgres reads
/// the credentials up to the first `@`).
fn extract_from_url(text: &str) -> Option<Extracted> {
    let scheme_end = text.find("://")? + 3;
    let after_credentials = text[scheme_end..]
        .find('@')
        .map_or(scheme_end, |at| scheme_end + at + 1);
    let Some(query_start) = text[after_credentials..]
        .find('?')
        .map(|q| after_credentials + q)
    else {
        return Some(Extracted {
            rest: text.to_string(),
            sslmode: None,
            sslrootcert: None,
        });
    };
    let mut out = Extracted {
        rest: String::new(),
        sslmode: None,
        sslrootcert: None,
    };
    let mut kept = Vec::new();
    for pair in text[query_start + 1..].split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match percent_decode(key)?.as_str() {
            "sslmode" => out.sslmode = Some(percent_decode(value)?),
            "sslrootcert" => out.sslrootcert = Some(percent_decode(value)?),
            _ => kept.push(pair),
        }
    }
    out.rest = text[..query_start].to_string();
    if !kept.is_empty() {
        out.rest.push('?');
        out.rest.push_str(&kept.join("&"));
    }
    Some(out)
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `key = value` pairs; values may be single-quoted, `\` escapes the next character.
fn extract_from_key_values(text: &str) -> Option<Extracted> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|&(_, c)| c);
    let offset = |i: usize| chars.get(i).map_or(text.len(), |&(o, _)| o);
    let mut out = Extracted {
        rest: String::new(),
        sslmode: None,
        sslrootcert: None,
    };
    let mut kept: Vec<&str> = Vec::new();
    let mut i = 0;
    loop {
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let pair_start = i;
        while at(i).is_some_and(|c| !c.is_whitespace() && c != '=') {
            i += 1;
        }
        let key = &text[offset(pair_start)..offset(i)];
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        if at(i) != Some('=') || key.is_empty() {
            return None;
        }
        i += 1;
        while at(i).is_some_and(char::is_whitespace) {
            i += 1;
        }
        let mut value = String::new();
        if at(i) == Some('\'') {
            i += 1;
            loop {
                match at(i)? {
                    '\\' => {
                        value.push(at(i + 1)?);
                        i += 2;
                    }
                    '\'' => {
                        i += 1;
                        break;
                    }
                    c => {
                        value.push(c);
                        i += 1;
                    }
                }
            }
        } else {
            while let Some(c) = at(i).filter(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.push(at(i + 1)?);
                    i += 2;
                } else {
                    value.push(c);
                    i += 1;
                }
            }
        }
        match key {
            "sslmode" => out.sslmode = Some(value),
            "sslrootcert" => out.sslrootcert = Some(value),
            _ => kept.push(&text[offset(pair_start)..offset(i)]),
        }
    }
    out.rest = kept.join(" ");
    Some(out)
}

/// The crypto provider: `ring`, always (not whatever the build happens to enable).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the trusted CAs. Errors name where they were looked for, never anything secret.
pub(crate) fn load_roots(source: &CaSource) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    match source {
        CaSource::File { path, .. } => {
            let bytes = std::fs::read(Path::new(path))
                .map_err(|e| format!("cannot read the CA file `{path}`: {e}"))?;
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("the CA file `{path}` is not valid PEM: {e}"))?;
            if certs.is_empty() {
                return Err(format!(
                    "the CA file `{path}` holds no certificate (expected PEM `-----BEGIN CERTIFICATE-----` blocks)"
                ));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| {
                    format!("the CA file `{path}` holds a certificate that cannot be used: {e}")
                })?;
            }
        }
        CaSource::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "no trusted CA certificates found on this system (install the ca-certificates package, or set ssl_root_cert to a CA file)"
                        .to_string(),
                );
            }
        }
    }
    Ok(roots)
}

/// The rustls configuration for a mode; `ca` is the trusted CAs when the mode (or a CA
/// file given with `require`) checks the chain.
pub(crate) fn client_config(
    mode: SslMode,
    roots: Option<RootCertStore>,
) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, roots) {
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => {
            Arc::new(AcceptAnyCertificate { provider })
        }
        (_, None) => return Err("a mode that verifies certificates needs CAs".to_string()),
        (SslMode::VerifyFull, Some(roots)) => webpki(roots, provider)?,
        (SslMode::Require | SslMode::VerifyCa, Some(roots)) => Arc::new(ChainOnly {
            inner: webpki(roots, provider)?,
        }),
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

fn webpki(
    roots: RootCertStore,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, String> {
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| format!("cannot set up certificate verification: {e}"))
}

/// `prefer` and `require`: encryption without authentication of the server, as libpq.
/// The handshake's signatures are still checked (the server holds the certificate's key).
#[derive(Debug)]
struct AcceptAnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `verify-ca`: the full WebPKI check (chain, validity, key usage) except the host name.
/// rustls checks the name last, so a name mismatch means everything else passed.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_print() {
        for mode in [
            SslMode::Disable,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            assert_eq!(SslMode::parse(mode.as_str()), Some(mode));
        }
        assert_eq!(SslMode::parse("allow"), None);
        assert!(SslMode::VerifyCa > SslMode::Require);
    }

    #[test]
    fn tls_options_come_out_of_urls() {
        let e = extract_tls_options(
            "postgres://u:p?w@h:5/db?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem",
        );
        assert_eq!(e.rest, "postgres://u:p?w@h:5/db?application_name=x");
        assert_eq!(e.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(e.sslrootcert.as_deref(), Some("/etc/ca.pem"));
        let e = extract_tls_options("postgresql://u@h/db?sslmode=require");
        assert_eq!(e.rest, "postgresql://u@h/db");
        assert_eq!(e.sslmode.as_deref(), Some("require"));
        let e = extract_tls_options("postgres://u@h/db");
        assert_eq!(e.rest, "postgres://u@h/db");
        assert_eq!(e.sslmode, None);
    }

    #[test]
    fn tls_options_come_out_of_key_values() {
        let e = extract_tls_options(
            "host=h user=u password='a b\\'c' sslmode = verify-ca sslrootcert='/my certs/ca.pem' dbname=d",
        );
        assert_eq!(e.rest, "host=h user=u password='a b\\'c' dbname=d");
        assert_eq!(e.sslmode.as_deref(), Some("verify-ca"));
        assert_eq!(e.sslrootcert.as_deref(), Some("/my certs/ca.pem"));
        // Unreadable: left for tokio-postgres to report.
        let e = extract_tls_options("host=h user");
        assert_eq!(e.rest, "host=h user");
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let err = load_roots(&CaSource::File {
            path: "/nonexistent/ca.pem".into(),
            field: "ssl_root_cert".into(),
        })
        .unwrap_err();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        assert!(err.contains("No such file"), "{err}");
    }

    #[test]
    fn every_mode_builds_a_config() {
        for mode in [SslMode::Disable, SslMode::Prefer, SslMode::Require] {
            client_config(mode, None).unwrap();
        }
        assert!(client_config(SslMode::VerifyFull, None).is_err());
    }
}
