//! Certificates made at test time (rcgen): a private CA and the server and client
//! certificates it signs, written as PEM files for a node's `[tls]` and a client's `--ca`.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::path::{Path, PathBuf};

/// A CA that writes certificates it signs into `dir`.
#[allow(missing_debug_implementations)] // rcgen's issuer has no Debug
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca = Ca {
            issuer,
            dir: dir.to_owned(),
        };
        std::fs::write(ca.file(name, "ca.pem"), ca.issuer.pem()).unwrap();
        ca
    }

    pub fn file(&self, name: &str, what: &str) -> PathBuf {
        self.dir.join(format!("{name}-{what}"))
    }

    /// Signs a certificate for `names` (DNS names or IPs); returns `(cert, key)` paths.
    pub fn sign(&self, name: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (c, k) = (self.file(name, "cert.pem"), self.file(name, "key.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }
}
