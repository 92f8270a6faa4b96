//! HTTPS for `serve`: the certificate chain and private key from PEM files (`--tls-cert`,
//! `--tls-key`), checked before the server starts, with errors that name the file at fault.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{given} is set but {missing} is not: HTTPS needs both the certificate and its key")]
    OnlyOne {
        given: &'static str,
        missing: &'static str,
    },
    #[error("cannot read the TLS {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the TLS certificate file {0} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate(PathBuf),
    #[error("the TLS certificate file {path} is not valid PEM: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("the TLS key file {path} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {reason}")]
    NoKey { path: PathBuf, reason: String },
    #[error("the private key in {key} does not match the certificate in {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot use the certificate in {cert} with the key in {key}: {reason}")]
    Unusable {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

const CERT_NAME: &str = "--tls-cert (TLS_CERT_FILE)";
const KEY_NAME: &str = "--tls-key (TLS_KEY_FILE)";

/// The server's TLS configuration, or `None` for plain HTTP when neither file is given.
pub fn load(
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(TlsError::OnlyOne {
                given: CERT_NAME,
                missing: KEY_NAME,
            })
        }
        (None, Some(_)) => {
            return Err(TlsError::OnlyOne {
                given: KEY_NAME,
                missing: CERT_NAME,
            })
        }
        (Some(cert), Some(key)) => (cert, key),
    };
    let read = |what, path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            what,
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read("certificate", cert)?;
    let key_pem = read("key", key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::BadCertificate {
            path: cert.to_owned(),
            reason: err.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_owned()));
    }
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|err| TlsError::NoKey {
        path: key.to_owned(),
        reason: err.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let unusable = |err: rustls::Error| match err {
        rustls::Error::InconsistentKeys(_) => TlsError::Mismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
        },
        other => TlsError::Unusable {
            cert: cert.to_owned(),
            key: key.to_owned(),
            reason: other.to_string(),
        },
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(unusable)?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(unusable)?;
    // HTTP/1.1 only (see `connections`).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}
