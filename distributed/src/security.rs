//! Who may talk to a cluster's servers (Dask's `Security`): a shared secret that
//! every call carries (a token), mutual TLS (certificates signed by the cluster's
//! own authority), both, or — on loopback addresses only — neither.
//!
//! A server refuses to listen outside 127.0.0.0/8 (and `::1`) without one of
//! them. With a token, a call that does not carry it — an action, a `DoGet`,
//! anything — is refused before it reaches the node, and the refusal is written
//! to stderr with the caller's address.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls;
use tonic::transport::{Certificate, ClientTlsConfig, Identity};
use tonic::{Request, Status};

/// The fewest characters a token may have: a short one is guessed.
const MIN_TOKEN: usize = 16;

/// The environment variable a token is read from when none is given.
pub const TOKEN_VAR: &str = "BRISK_TOKEN";
/// The environment variables mutual TLS is read from: the authority's
/// certificate, this node's certificate and its key (PEM files), and the name
/// clients check in servers' certificates (default: the address dialled).
pub const TLS_VARS: [&str; 4] =
    ["BRISK_TLS_CA", "BRISK_TLS_CERT", "BRISK_TLS_KEY", "BRISK_TLS_SERVER_NAME"];

/// How a node proves itself to the others and checks them: give every node of
/// a cluster the same.
#[derive(Clone, Default)]
pub struct Security {
    token: Option<Arc<str>>,
    tls: Option<Arc<Tls>>,
}

/// Mutual TLS: the authority that signs every node's certificate, this node's
/// certificate and key, and the name checked in a server's certificate.
#[derive(Clone)]
struct Tls {
    ca: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
    server_name: Option<String>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.debug_struct("Security")
            .field("token", &self.token.as_ref().map(|_| "set"))
            .field("tls", &self.tls.as_ref().map(|_| "set"))
            .finish()
    }
}

impl Security {
    /// No token and no TLS: for loopback addresses only.
    pub fn none() -> Security {
        Security::default()
    }

    /// Adds a shared secret: every call carries it, every server checks it.
    /// It travels as an HTTP header, so it is printable ASCII without spaces,
    /// and is at least 16 characters long. Without TLS it crosses the network
    /// in the clear: on networks others can watch, use TLS as well.
    pub fn token(mut self, token: &str) -> Result<Security, String> {
        if token.len() < MIN_TOKEN || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "a token must be at least {MIN_TOKEN} printable ASCII characters without spaces (it travels as a header): generate one with, for example, `openssl rand -hex 32`"
            ));
        }
        self.token = Some(token.into());
        Ok(self)
    }

    /// Adds mutual TLS from PEM files: `ca` the authority that signed every
    /// node's certificate, `cert` and `key` this node's.
    pub fn tls_files(self, ca: &Path, cert: &Path, key: &Path) -> Result<Security, String> {
        let read = |what: &str, path: &Path| {
            std::fs::read(path)
                .map_err(|e| format!("cannot read the TLS {what} {}: {e}", path.display()))
        };
        self.tls_pem(
            read("authority's certificate", ca)?,
            read("certificate", cert)?,
            read("key", key)?,
        )
    }

    /// Adds mutual TLS from PEM text (see [`tls_files`](Self::tls_files)).
    pub fn tls_pem(mut self, ca: Vec<u8>, cert: Vec<u8>, key: Vec<u8>) -> Result<Security, String> {
        for (what, pem) in [("authority's certificate", &ca), ("certificate", &cert), ("key", &key)]
        {
            if !String::from_utf8_lossy(pem).contains("-----BEGIN ") {
                return Err(format!("the TLS {what} is not in PEM form (-----BEGIN ...)"));
            }
        }
        self.tls = Some(Arc::new(Tls { ca, cert, key, server_name: None }));
        Ok(self)
    }

    /// With TLS, the name a client checks in every server's certificate instead
    /// of the address it dials: one certificate for the whole cluster, its
    /// names fixed while addresses change (pods, batch jobs).
    pub fn server_name(mut self, name: &str) -> Security {
        if let Some(tls) = self.tls.take() {
            let tls = Tls { server_name: Some(name.into()), ..Arc::unwrap_or_clone(tls) };
            self.tls = Some(Arc::new(tls));
        }
        self
    }

    /// What the environment gives: a token in `BRISK_TOKEN`, TLS files in
    /// `BRISK_TLS_CA`, `BRISK_TLS_CERT` and `BRISK_TLS_KEY` (all three or none),
    /// the server name in `BRISK_TLS_SERVER_NAME`.
    pub fn from_env() -> Result<Security, String> {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        let mut security = Security::none();
        if let Some(token) = var(TOKEN_VAR) {
            let token = token.to_str().ok_or(format!("{TOKEN_VAR} is not text"))?.to_owned();
            security = security.token(&token).map_err(|e| format!("{TOKEN_VAR}: {e}"))?;
        }
        let [ca, cert, key, name] = TLS_VARS.map(var);
        match (ca, cert, key) {
            (None, None, None) => {}
            (Some(ca), Some(cert), Some(key)) => {
                security = security.tls_files(ca.as_ref(), cert.as_ref(), key.as_ref())?;
            }
            _ => {
                return Err(format!(
                    "give all of {}, {} and {} for TLS, or none",
                    TLS_VARS[0], TLS_VARS[1], TLS_VARS[2]
                ));
            }
        }
        if let Some(name) = name {
            security = security.server_name(&name.to_string_lossy());
        }
        Ok(security)
    }

    /// Whether a token or TLS is set.
    pub fn is_set(&self) -> bool {
        self.token.is_some() || self.tls.is_some()
    }

    /// Whether TLS is set.
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Refuses a `kind` of server on an address outside loopback without a
    /// token or TLS.
    pub(crate) fn check_listen(&self, kind: &str, listen: SocketAddr) -> Result<(), String> {
        if listen.ip().is_loopback() || self.is_set() {
            return Ok(());
        }
        Err(format!(
            "a Brisk {kind} listening on {listen}, outside 127.0.0.0/8, must know who calls it: give a shared secret with --token or {TOKEN_VAR} (the same for the whole cluster), or certificates with --tls-ca, --tls-cert and --tls-key; or listen on 127.0.0.1"
        ))
    }

    /// The header every call carries, when there is a token.
    pub(crate) fn authorization(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    /// Lets a call in, or refuses it (and says so on stderr) when it lacks the
    /// token. `server` names the server for the log.
    pub(crate) fn admit(&self, server: &str, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(token) = &self.token else { return Ok(request) };
        let given = request.metadata().get("authorization").and_then(|v| v.to_str().ok());
        let refusal = match given.and_then(|v| v.strip_prefix("Bearer ")) {
            Some(given) if same_secret(given.as_bytes(), token.as_bytes()) => return Ok(request),
            Some(_) => "a wrong token",
            None => "no token",
        };
        let from =
            request.remote_addr().map_or_else(|| "an unknown address".into(), |a| a.to_string());
        // Not eprintln!, which panics when stderr is closed.
        let line = format!("{server}: refused a call from {from}: {refusal}\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        Err(Status::unauthenticated(format!(
            "{server} refused the call: {refusal}; give the cluster's token with --token or {TOKEN_VAR}"
        )))
    }

    /// The TLS a server presents and the client certificates it requires: an
    /// acceptor of connections (done here rather than by tonic, so that every
    /// refused handshake is logged with the caller's address).
    pub(crate) fn acceptor(&self) -> Result<Option<tokio_rustls::TlsAcceptor>, String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let Some(tls) = &self.tls else { return Ok(None) };
        let certificates = |pem: &[u8], what: &str| {
            CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the TLS {what}: {e}"))
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in certificates(&tls.ca, "authority's certificate")? {
            roots.add(ca).map_err(|e| format!("the TLS authority's certificate: {e}"))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.into(),
            provider.clone(),
        )
        .build()
        .map_err(|e| format!("the TLS authority's certificate: {e}"))?;
        let key =
            PrivateKeyDer::from_pem_slice(&tls.key).map_err(|e| format!("the TLS key: {e}"))?;
        let chain = certificates(&tls.cert, "certificate")?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_client_cert_verifier(verifier).with_single_cert(chain, key))
            .map_err(|e| format!("the TLS certificate and key: {e}"))?;
        // gRPC is HTTP/2.
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }

    /// The TLS a client of `addr` uses: the cluster's authority, this node's
    /// certificate, and the name to check.
    pub(crate) fn client_tls(&self, addr: SocketAddr) -> Option<ClientTlsConfig> {
        let tls = self.tls.as_ref()?;
        let name = tls.server_name.clone().unwrap_or_else(|| addr.ip().to_string());
        Some(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(&tls.ca))
                .identity(Identity::from_pem(&tls.cert, &tls.key))
                .domain_name(name),
        )
    }
}

/// Compares two secrets in time that depends on their lengths only.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_loopback_a_server_needs_a_token_or_tls() {
        let none = Security::none();
        assert!(none.check_listen("worker", "127.0.0.1:0".parse().unwrap()).is_ok());
        assert!(none.check_listen("worker", "127.0.0.9:0".parse().unwrap()).is_ok());
        assert!(none.check_listen("worker", "[::1]:0".parse().unwrap()).is_ok());
        for addr in ["0.0.0.0:8786", "10.1.2.3:0", "[::]:0"] {
            let refused = none.check_listen("scheduler", addr.parse().unwrap()).unwrap_err();
            assert!(refused.contains(addr) && refused.contains("--token"), "{refused}");
        }
        let token = Security::none().token("s3cret-s3cret-s3cret").unwrap();
        assert!(token.check_listen("scheduler", "0.0.0.0:8786".parse().unwrap()).is_ok());
    }

    #[test]
    fn tokens_are_printable_and_never_shown() {
        for bad in
            ["", "short-token", "two words two words", "tab\there-tab\there", "é-é-é-é-é-é-é-é-é"]
        {
            assert!(Security::none().token(bad).is_err(), "{bad:?} accepted");
        }
        let security = Security::none().token("s3cret-token-0123").unwrap();
        assert_eq!(security.authorization().as_deref(), Some("Bearer s3cret-token-0123"));
        assert!(!format!("{security:?}").contains("s3cret"));
    }

    #[test]
    fn calls_pass_with_the_token_only() {
        let security = Security::none().token("right-right-right").unwrap();
        let call = |header: Option<&str>| {
            let mut request = Request::new(());
            if let Some(h) = header {
                request.metadata_mut().insert("authorization", h.parse().unwrap());
            }
            security
                .admit("brisk worker test", request)
                .map(|_| ())
                .map_err(|s| s.message().to_string())
        };
        assert!(call(Some("Bearer right-right-right")).is_ok());
        assert!(call(None).unwrap_err().contains("no token"));
        assert!(call(Some("Bearer wrong-wrong-wrong")).unwrap_err().contains("a wrong token"));
        assert!(call(Some("Bearer right-right-righ")).unwrap_err().contains("a wrong token"));
        assert!(call(Some("right-right-right")).unwrap_err().contains("no token"));
        // With no token set, every call passes.
        assert!(Security::none().admit("w", Request::new(())).is_ok());
        assert!(
            same_secret(b"abc", b"abc")
                && !same_secret(b"abc", b"abd")
                && !same_secret(b"ab", b"abc")
        );
    }

    #[test]
    fn tls_files_are_read_and_checked() {
        let dir = std::env::temp_dir().join(format!("brisk-security-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = Security::none()
            .tls_files(&dir.join("ca.pem"), &dir.join("c.pem"), &dir.join("k.pem"))
            .unwrap_err();
        assert!(missing.contains("ca.pem"), "{missing}");
        for name in ["ca.pem", "c.pem", "k.pem"] {
            std::fs::write(dir.join(name), "not pem").unwrap();
        }
        let bad = Security::none()
            .tls_files(&dir.join("ca.pem"), &dir.join("c.pem"), &dir.join("k.pem"))
            .unwrap_err();
        assert!(bad.contains("PEM"), "{bad}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
