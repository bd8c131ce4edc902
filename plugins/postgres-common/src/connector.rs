//! One place that turns a connection string plus the TLS settings into connections, and
//! connection failures into one line a person can act on, sorted into "retry" and
//! "give up". The password never appears in anything this returns or logs.

use std::{error::Error as _, fmt};

use rustls::CertificateError;
use tokio_postgres::{config::Host, error::SqlState, Client};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::{
    describe, describe_target, is_transient, parse_connection_string,
    tls::{client_config, extract_tls_options, load_roots, CaSource, SslMode},
};

/// The TLS settings given as config fields (next to the connection string, which may
/// carry its own `sslmode` and `sslrootcert`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TlsSettings<'a> {
    /// `ssl_mode`.
    pub ssl_mode: Option<SslMode>,
    /// `ssl_root_cert`: a PEM file of trusted CAs, or `system`.
    pub ssl_root_cert: Option<&'a str>,
}

/// A config problem found before any connection: `field` is the `plugin_config` field to
/// fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConfigError {
    /// `connection_string`, `ssl_mode` or `ssl_root_cert`.
    pub field: &'static str,
    /// What is wrong, without any secret.
    pub reason: String,
}

impl ConfigError {
    fn new(field: &'static str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            field,
            reason: reason.into(),
        }
    }
}

/// A failed connection attempt, already in words and with the password scrubbed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct ConnectError {
    /// Why, in words, with a hint where there is one.
    pub reason: String,
    /// Worth retrying (network, server starting) or not (authentication, certificate,
    /// missing database).
    pub transient: bool,
}

/// Everything needed to open connections to one PostgreSQL target.
#[derive(Clone)]
pub struct PgConnector {
    pg: tokio_postgres::Config,
    password: Option<String>,
    target: String,
    mode: SslMode,
    ca: Option<CaSource>,
    tls: MakeRustlsConnect,
}

impl fmt::Debug for PgConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnector")
            .field("target", &self.target)
            .field("ssl_mode", &self.mode)
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

impl PgConnector {
    /// Checks the connection string and the TLS settings and reads the trusted CAs (the
    /// only I/O). Errors name the field and never echo the password.
    pub fn new(
        connection_string: &str,
        tls: TlsSettings<'_>,
        application_name: &str,
    ) -> Result<PgConnector, ConfigError> {
        let extracted = extract_tls_options(connection_string);
        let (mut pg, password) = parse_connection_string(&extracted.rest, application_name)
            .map_err(|r| ConfigError::new("connection_string", r))?;
        let scrub = |text: String| match &password {
            Some(p) => text.replace(p.as_str(), "***"),
            None => text,
        };

        let in_string = match &extracted.sslmode {
            None => None,
            Some(text) => Some(SslMode::parse(text).ok_or_else(|| {
                ConfigError::new(
                    "connection_string",
                    scrub(format!(
                        "sslmode={text} is not supported (use disable, prefer, require, verify-ca or verify-full)"
                    )),
                )
            })?),
        };
        let mode = match (tls.ssl_mode, in_string) {
            (Some(field), Some(string)) if field != string => {
                return Err(ConfigError::new(
                    "ssl_mode",
                    format!(
                        "`{field}` disagrees with sslmode={string} inside connection_string (give it in one place)"
                    ),
                ))
            }
            (field, string) => field.or(string),
        };

        let root_cert_field = tls.ssl_root_cert.filter(|p| !p.trim().is_empty());
        let ca = match (root_cert_field, extracted.sslrootcert.as_deref()) {
            (Some(field), Some(string)) if field != string => {
                return Err(ConfigError::new(
                    "ssl_root_cert",
                    scrub(format!(
                        "`{field}` disagrees with sslrootcert={string} inside connection_string (give it in one place)"
                    )),
                ))
            }
            (Some(path), _) => Some(ca_source(path, "ssl_root_cert")),
            (None, Some(path)) => Some(ca_source(path, "connection_string (sslrootcert)")),
            (None, None) => None,
        };

        // libpq: `sslrootcert=system` means the system's CAs and insists on verify-full.
        let mode = match (&ca, mode) {
            (Some(CaSource::System), None) => SslMode::VerifyFull,
            (Some(CaSource::System), Some(weak)) if weak != SslMode::VerifyFull => {
                return Err(ConfigError::new(
                    "ssl_mode",
                    format!(
                        "`{weak}` may not be used with the system's CAs (ssl_root_cert = \"system\"): use verify-full"
                    ),
                ))
            }
            (_, mode) => mode.unwrap_or_default(),
        };

        // The CAs are read when the mode checks the chain; `require` with a CA file
        // checks the chain too (as libpq does, for backwards compatibility).
        let ca = match mode {
            SslMode::Disable | SslMode::Prefer => None,
            SslMode::Require => ca,
            SslMode::VerifyCa | SslMode::VerifyFull => Some(ca.unwrap_or(CaSource::System)),
        };
        let roots = match &ca {
            None => None,
            Some(source) => Some(load_roots(source).map_err(|reason| match source {
                CaSource::File { field, .. } if field == "ssl_root_cert" => {
                    ConfigError::new("ssl_root_cert", reason)
                }
                CaSource::File { .. } => {
                    ConfigError::new("connection_string", format!("sslrootcert: {reason}"))
                }
                CaSource::System => ConfigError::new(
                    "ssl_mode",
                    format!("`{mode}` without ssl_root_cert checks against the system's CAs, but {reason}"),
                ),
            })?),
        };
        let config =
            client_config(mode, roots).map_err(|reason| ConfigError::new("ssl_mode", reason))?;
        pg.ssl_mode(mode.negotiation());
        Ok(PgConnector {
            target: describe_target(&pg),
            pg,
            password,
            mode,
            ca,
            tls: MakeRustlsConnect::new(config),
        })
    }

    /// `user@host:port/database`, safe to print.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The TLS mode in force.
    pub fn ssl_mode(&self) -> SslMode {
        self.mode
    }

    /// Where the trusted CAs come from, when the chain is checked.
    pub fn ca(&self) -> Option<&CaSource> {
        self.ca.as_ref()
    }

    /// The parsed connection parameters (they hold the password: never print them).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.pg
    }

    /// Replaces the password in `text` with `***`.
    pub fn scrub(&self, text: &str) -> String {
        match &self.password {
            Some(p) => text.replace(p.as_str(), "***"),
            None => text.to_string(),
        }
    }

    /// Opens a connection; its I/O runs on a spawned task that logs (under `instance`)
    /// how it ended. With `prefer`, a failed TLS handshake is followed by a plain try,
    /// as libpq does.
    pub async fn connect(&self, instance: &str) -> Result<Client, ConnectError> {
        let result = match self.connect_with(&self.pg, instance).await {
            Err(err) if self.mode == SslMode::Prefer && tls_failure(&err).is_some() => {
                tracing::warn!(
                    target = %self.target,
                    "TLS handshake failed ({}); sslmode=prefer: trying without TLS",
                    self.scrub(&describe(&err))
                );
                let mut plain = self.pg.clone();
                plain.ssl_mode(tokio_postgres::config::SslMode::Disable);
                self.connect_with(&plain, instance).await
            }
            other => other,
        };
        result.map_err(|err| self.connect_error(&err))
    }

    async fn connect_with(
        &self,
        pg: &tokio_postgres::Config,
        instance: &str,
    ) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) = pg.connect(self.tls.clone()).await?;
        let instance = instance.to_string();
        let password = self.password.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                let mut text = describe(&e);
                if let Some(p) = password.filter(|p| !p.is_empty()) {
                    text = text.replace(p.as_str(), "***");
                }
                tracing::warn!(instance = %instance, "connection to PostgreSQL ended: {text}");
            }
        });
        Ok(client)
    }

    /// A failed connection in words, classified.
    pub fn connect_error(&self, err: &tokio_postgres::Error) -> ConnectError {
        let (reason, transient) = match tls_failure(err) {
            Some(tls) => (self.tls_reason(tls), false),
            None => self.plain_reason(err),
        };
        ConnectError {
            reason: self.scrub(&reason),
            transient,
        }
    }

    fn host(&self) -> String {
        match self.pg.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => self
                .pg
                .get_hostaddrs()
                .first()
                .map_or_else(|| "localhost".to_string(), |a| a.to_string()),
        }
    }

    fn tls_reason(&self, tls: &rustls::Error) -> String {
        let ca = self
            .ca
            .as_ref()
            .map_or_else(|| "a trusted CA".to_string(), |c| c.to_string());
        match tls {
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => format!(
                "TLS: the server's certificate does not name the host `{}` ({tls}); sslmode={} checks the host name: connect by a name the certificate holds, or use sslmode=verify-ca",
                self.host(),
                self.mode
            ),
            rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer | CertificateError::BadSignature,
            ) => format!(
                "TLS: the server's certificate is not signed by {ca} ({tls}); sslmode={}{} checks the certificate chain: set ssl_root_cert to the CA that signed the server's certificate",
                self.mode,
                if self.mode == SslMode::Require { " with a CA file" } else { "" }
            ),
            rustls::Error::InvalidCertificate(_) => {
                format!("TLS: the server's certificate was refused ({tls}); sslmode={}", self.mode)
            }
            other => format!("TLS handshake with the server failed ({other}); sslmode={}", self.mode),
        }
    }

    fn plain_reason(&self, err: &tokio_postgres::Error) -> (String, bool) {
        let mut reason = describe(err);
        let mut transient = is_transient(err);
        if reason.contains("server does not support TLS") {
            reason = format!(
                "the server does not accept TLS connections, and sslmode={} requires TLS (turn on ssl in the server's configuration, or use sslmode=prefer)",
                self.mode
            );
            transient = false;
        } else if reason.contains("no hostname provided for TLS") {
            reason = format!(
                "sslmode={} needs a host name for TLS (give host=..., not only hostaddr)",
                self.mode
            );
            transient = false;
        } else if let Some(code) = err.code() {
            if *code == SqlState::INVALID_PASSWORD {
                reason.push_str(" (check the user and password in connection_string)");
            } else if *code == SqlState::INVALID_CATALOG_NAME {
                reason.push_str(" (create it, or fix the database name in connection_string)");
            } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
                && reason.contains("no encryption")
                && self.mode <= SslMode::Prefer
            {
                reason.push_str(&format!(
                    " (the server accepts only TLS connections from here, and sslmode={}: set ssl_mode to require, verify-ca or verify-full)",
                    self.mode
                ));
            }
        }
        (reason, transient)
    }
}

fn ca_source(path: &str, field: &str) -> CaSource {
    if path.trim() == "system" {
        CaSource::System
    } else {
        CaSource::File {
            path: path.to_string(),
            field: field.to_string(),
        }
    }
}

/// The rustls error behind a failed TLS handshake, if that is what failed.
fn tls_failure(err: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = cause
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        source = cause.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connector(text: &str, tls: TlsSettings<'_>) -> Result<PgConnector, ConfigError> {
        PgConnector::new(text, tls, "test")
    }

    #[test]
    fn the_default_is_prefer_and_modes_come_from_either_place() {
        let c = connector("postgres://u:pw@h/db", TlsSettings::default()).unwrap();
        assert_eq!(c.ssl_mode(), SslMode::Prefer);
        assert_eq!(c.target(), "u@h:5432/db");
        let c = connector(
            "postgres://u:pw@h/db?sslmode=require",
            TlsSettings::default(),
        )
        .unwrap();
        assert_eq!(c.ssl_mode(), SslMode::Require);
        assert_eq!(c.ca(), None);
        let c = connector(
            "host=h user=u password=pw sslmode=disable",
            TlsSettings::default(),
        )
        .unwrap();
        assert_eq!(c.ssl_mode(), SslMode::Disable);
        let c = connector(
            "postgres://u:pw@h/db",
            TlsSettings {
                ssl_mode: Some(SslMode::Require),
                ssl_root_cert: None,
            },
        )
        .unwrap();
        assert_eq!(c.ssl_mode(), SslMode::Require);
    }

    #[test]
    fn conflicts_and_unknown_modes_are_named() {
        let err = connector(
            "postgres://u:hunter22@h/db?sslmode=require",
            TlsSettings {
                ssl_mode: Some(SslMode::Disable),
                ssl_root_cert: None,
            },
        )
        .unwrap_err();
        assert_eq!(err.field, "ssl_mode");
        assert!(err.reason.contains("disagrees"), "{err}");
        let err = connector(
            "postgres://u:hunter22@h/db?sslmode=allow",
            TlsSettings::default(),
        )
        .unwrap_err();
        assert_eq!(err.field, "connection_string");
        assert!(err.reason.contains("sslmode=allow"), "{err}");
        assert!(!err.to_string().contains("hunter22"), "{err}");
        let err = connector(
            "postgres://u:hunter22@h/db?sslrootcert=system&sslmode=require",
            TlsSettings::default(),
        )
        .unwrap_err();
        assert_eq!(err.field, "ssl_mode");
        assert!(err.reason.contains("verify-full"), "{err}");
    }

    #[test]
    fn a_missing_ca_file_names_the_field_and_the_path() {
        let err = connector(
            "postgres://u:hunter22@h/db",
            TlsSettings {
                ssl_mode: Some(SslMode::VerifyFull),
                ssl_root_cert: Some("/nonexistent/root.crt"),
            },
        )
        .unwrap_err();
        assert_eq!(err.field, "ssl_root_cert");
        assert!(err.reason.contains("/nonexistent/root.crt"), "{err}");
        let err = connector(
            "postgres://u:hunter22@h/db?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem",
            TlsSettings::default(),
        )
        .unwrap_err();
        assert_eq!(err.field, "connection_string");
        assert!(err.reason.starts_with("sslrootcert: "), "{err}");
        assert!(err.reason.contains("/nonexistent/ca.pem"), "{err}");
        assert!(!err.reason.contains("hunter22"), "{err}");
        // Not read when the mode does not verify.
        let c = connector(
            "postgres://u:pw@h/db?sslrootcert=/nonexistent/ca.pem",
            TlsSettings::default(),
        )
        .unwrap();
        assert_eq!(c.ca(), None);
    }

    #[test]
    fn debug_output_holds_no_password() {
        let c = connector("postgres://u:hunter22@h/db", TlsSettings::default()).unwrap();
        assert!(!format!("{c:?}").contains("hunter22"));
        assert_eq!(c.scrub("x hunter22 y"), "x *** y");
    }
}
