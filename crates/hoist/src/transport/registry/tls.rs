//! TLS of registry clients: which certificates a registry is trusted with and which client
//! certificate is presented to it, and the rustls configuration both HTTP clients share.
//!
//! The files come from `--cert-dir` when given, else, as containers-certs.d(5) says, from the first
//! of `/etc/containers/certs.d/HOST[:PORT]/` and `/etc/docker/certs.d/HOST[:PORT]/` that exists
//! (`$HOIST_CERTS_D`, a `:`-separated list of base directories, replaces these two; it is meant for
//! tests). In that directory `*.crt` files are CA certificates to trust besides the system's, and a
//! `NAME.cert` with its `NAME.key` is the client certificate for mutual TLS.
//!
//! Verification is rustls-platform-verifier's (the system roots plus the `*.crt` ones), with one
//! addition: a certificate the user trusts explicitly that is its own CA (`CA:TRUE`, as
//! `openssl req -x509` makes) is accepted as the server's certificate when the server presents
//! exactly that certificate and it names the host, as Go's TLS stack (skopeo) and curl do. webpki
//! alone refuses it (`CaUsedAsEndEntity`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::error::{Error, Result};

/// The environment variable that replaces the default certs.d base directories (for tests).
pub const CERTS_D_ENV: &str = "HOIST_CERTS_D";

/// The base directories searched for `HOST[:PORT]/` when `--cert-dir` is not given, in order.
pub const DEFAULT_CERTS_D: [&str; 2] = ["/etc/containers/certs.d", "/etc/docker/certs.d"];

/// The certs.d base directories: `$HOIST_CERTS_D` when set, else [`DEFAULT_CERTS_D`].
pub fn certs_d_bases() -> Vec<PathBuf> {
    match std::env::var_os(CERTS_D_ENV) {
        Some(v) => std::env::split_paths(&v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => DEFAULT_CERTS_D.iter().map(PathBuf::from).collect(),
    }
}

/// A client certificate chain and its private key.
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Identity(<hidden>)")
    }
}

/// The TLS material of one registry.
#[derive(Debug, Default)]
pub struct TlsFiles {
    /// CA certificates to trust besides the system's.
    pub roots: Vec<CertificateDer<'static>>,
    /// The client certificate for mutual TLS.
    pub identity: Option<Identity>,
    /// The directory they were read from, if any.
    pub dir: Option<PathBuf>,
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    // A FIFO or device is refused at once (never waited on); a symlink to a file is read through.
    let read = || -> std::io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut crate::durable::open_regular(path, false)?, &mut bytes)?;
        Ok(bytes)
    };
    read().map_err(|e| Error::io(format!("reading {}", path.display()), e))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::Other(format!(
                "certificate {} is not valid PEM: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(Error::Other(format!(
            "certificate file {} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

impl TlsFiles {
    /// The files for `host` (`HOST[:PORT]`): `cert_dir` when given (it must exist), else the first
    /// `BASE/HOST[:PORT]/` of `bases` that exists, else none.
    pub fn for_host(cert_dir: Option<&Path>, bases: &[PathBuf], host: &str) -> Result<TlsFiles> {
        if let Some(dir) = cert_dir {
            return TlsFiles::load(dir);
        }
        for base in bases {
            let dir = base.join(host);
            if dir.is_dir() {
                tracing::info!("{host}: TLS certificates from {}", dir.display());
                return TlsFiles::load(&dir);
            }
        }
        Ok(TlsFiles::default())
    }

    /// Reads `dir`'s `*.crt` (trusted CAs) and `*.cert` + `*.key` (client certificate) files.
    pub fn load(dir: &Path) -> Result<TlsFiles> {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            Error::io(
                format!("reading certificate directory {}", dir.display()),
                e,
            )
        })?;
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        let mut files = TlsFiles {
            dir: Some(dir.to_path_buf()),
            ..TlsFiles::default()
        };
        let ext = |p: &Path, x: &str| p.extension().is_some_and(|e| e == x);
        for p in &paths {
            if ext(p, "crt") {
                files.roots.append(&mut certificates(p)?);
            } else if ext(p, "cert") {
                let key_path = p.with_extension("key");
                if !key_path.exists() {
                    return Err(Error::Other(format!(
                        "client certificate {} has no key {}",
                        p.display(),
                        key_path.display()
                    )));
                }
                if files.identity.is_some() {
                    // containers/image offers every pair; rustls takes one: the first by name.
                    tracing::info!(
                        "{}: more than one client certificate, using the first",
                        dir.display()
                    );
                    continue;
                }
                let chain = certificates(p)?;
                let key = PrivateKeyDer::from_pem_slice(&read_file(&key_path)?).map_err(|_| {
                    Error::Other(format!(
                        "client key {} is not a PEM private key",
                        key_path.display()
                    ))
                })?;
                files.identity = Some(Identity { chain, key });
            } else if ext(p, "key") && !p.with_extension("cert").exists() {
                return Err(Error::Other(format!(
                    "client key {} has no certificate {}",
                    p.display(),
                    p.with_extension("cert").display()
                )));
            }
        }
        Ok(files)
    }

    /// The rustls configuration of a client with these files; `verify` false accepts any server
    /// certificate (`--tls-verify=false`), still presenting the client certificate.
    pub(crate) fn client_config(&self, verify: bool) -> Result<rustls::ClientConfig> {
        let provider = CryptoProvider::get_default()
            .cloned()
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()));
        let fail = |e: rustls::Error| Error::Other(format!("setting up TLS: {e}"));
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(fail)?;
        let verifier: Arc<dyn ServerCertVerifier> = if verify {
            let inner = rustls_platform_verifier::Verifier::new_with_extra_roots(
                self.roots.iter().cloned(),
                provider.clone(),
            )
            .map_err(fail)?;
            Arc::new(TrustedSelfSigned {
                inner: Arc::new(inner),
                trusted: self.roots.clone(),
            })
        } else {
            Arc::new(AnyCertificate(provider))
        };
        let builder = builder
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &self.identity {
            Some(id) => builder
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .map_err(|e| {
                    Error::Other(format!(
                        "the client certificate in {} does not match its key: {e}",
                        self.dir.as_deref().unwrap_or(Path::new("?")).display()
                    ))
                })?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// True for webpki's refusal of a CA certificate presented as the server's own.
fn is_ca_used_as_end_entity(e: &rustls::Error) -> bool {
    matches!(e, rustls::Error::InvalidCertificate(CertificateError::Other(o))
        if o.0.downcast_ref::<webpki::Error>() == Some(&webpki::Error::CaUsedAsEndEntity))
}

/// The platform verifier, and a trusted self-signed CA certificate as the server's own (see the
/// module documentation). webpki checks validity dates before basic constraints, so a certificate
/// refused only as `CaUsedAsEndEntity` is within its dates; its host name is checked here.
#[derive(Debug)]
struct TrustedSelfSigned {
    inner: Arc<dyn ServerCertVerifier>,
    trusted: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for TrustedSelfSigned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(e)
                if is_ca_used_as_end_entity(&e)
                    && self
                        .trusted
                        .iter()
                        .any(|t| t.as_ref() == end_entity.as_ref()) =>
            {
                let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| {
                    rustls::Error::InvalidCertificate(CertificateError::BadEncoding)
                })?;
                cert.verify_is_valid_for_subject_name(server_name)
                    .map_err(|_| {
                        rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
                    })?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `--tls-verify=false`: any certificate is accepted; the handshake's signatures are still checked
/// against the certificate presented.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
