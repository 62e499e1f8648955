//! The TLS side of STARTTLS: a certificate from PEM files, or a self-signed one made at start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Error;

/// An acceptor with the certificate chain and key read from PEM files.
pub(crate) fn from_files(certificate: &Path, key: &Path) -> Result<TlsAcceptor, Error> {
    let tls_error =
        |path: &Path, e: &dyn std::fmt::Display| Error::Tls(format!("{}: {e}", path.display()));
    let chain = CertificateDer::pem_file_iter(certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| tls_error(certificate, &e))?;
    if chain.is_empty() {
        return Err(tls_error(certificate, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_error(key, &e))?;
    acceptor(chain, key)
}

/// An acceptor with a self-signed certificate naming `domains`.
pub(crate) fn self_signed(domains: Vec<String>) -> Result<TlsAcceptor, Error> {
    let made = make_self_signed(domains)?;
    let key = PrivatePkcs8KeyDer::from(made.signing_key.serialize_der());
    acceptor(vec![made.cert.der().clone()], key.into())
}

/// The certificate and key files in `dir` (`certificate.pem`, `private-key.pem`), made
/// self-signed for `domains` if they are not there yet: a certificate that stays the same
/// from one start to the next, so that a client accepts it once.
pub fn self_signed_files(dir: &Path, domains: Vec<String>) -> Result<(PathBuf, PathBuf), Error> {
    let (certificate, key) = (dir.join("certificate.pem"), dir.join("private-key.pem"));
    if certificate.exists() && key.exists() {
        return Ok((certificate, key));
    }
    let made = make_self_signed(domains)?;
    let write = |path: &Path, text: String| {
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(path, text))
            .map_err(|e| Error::Tls(format!("{}: {e}", path.display())))
    };
    write(&key, made.signing_key.serialize_pem())?;
    write(&certificate, made.cert.pem())?;
    Ok((certificate, key))
}

fn make_self_signed(domains: Vec<String>) -> Result<rcgen::CertifiedKey<rcgen::KeyPair>, Error> {
    rcgen::generate_simple_self_signed(domains)
        .map_err(|e| Error::Tls(format!("making a self-signed certificate: {e}")))
}

fn acceptor(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, Error> {
    // ring: no post-quantum key exchange, but nothing to build beyond ring's own C; enough
    // for an example server.
    #[allow(deprecated)]
    let provider = ring::default_provider();
    let config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| Error::Tls(e.to_string()))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_certificate_and_key_from_pem_files_are_used() {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["example.com".to_owned()]).unwrap();
        let (certificate, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&certificate, made.cert.pem()).unwrap();
        std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
        assert!(from_files(&certificate, &key).is_ok());
    }

    #[test]
    fn a_self_signed_certificate_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("tls");
        let (certificate, key) = self_signed_files(&kept, vec!["localhost".into()]).unwrap();
        let first = std::fs::read(&certificate).unwrap();
        assert!(from_files(&certificate, &key).is_ok());
        let (again, _) = self_signed_files(&kept, vec!["localhost".into()]).unwrap();
        assert_eq!(std::fs::read(again).unwrap(), first);
    }

    #[test]
    fn unusable_files_are_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let made = rcgen::generate_simple_self_signed(vec!["example.com".to_owned()]).unwrap();
        let (certificate, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&certificate, made.cert.pem()).unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let missing = dir.path().join("missing.pem");
        for (cert, key, named) in [
            (&certificate, &key, &key),
            (&missing, &key, &missing),
            (&key, &key, &key),
        ] {
            let Err(Error::Tls(message)) = from_files(cert, key) else {
                panic!("{} and {} were accepted", cert.display(), key.display());
            };
            assert!(message.contains(&named.display().to_string()), "{message}");
        }
    }
}
