//! `cohort cert`: a development CA and node certificates for mutual TLS
//! between nodes, so TLS can be tried in two commands. For production, use
//! the organisation's own CA: any certificate valid for the host of the
//! node name, for server and client authentication, will do.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use cohort::NodeName;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The CA's certificate file in a CA directory.
pub const CA_CERT: &str = "ca.pem";
/// The CA's key file in a CA directory.
pub const CA_KEY: &str = "ca-key.pem";

/// What `cohort cert` makes.
#[derive(Subcommand)]
pub enum CertCmd {
    /// A development CA: DIR/ca.pem (give it to every node as --tls-ca)
    /// and DIR/ca-key.pem (keep it to make node certificates).
    Ca {
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// A node certificate signed by the CA of `cert ca`, valid for the host
    /// of --name: DIR/NAME.pem and DIR/NAME-key.pem.
    Node {
        /// The CA directory made by `cohort cert ca`.
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The node name, name@host; the certificate is valid for host.
        #[arg(long)]
        name: String,
        /// Another DNS name or IP address the certificate is valid for
        /// (repeatable).
        #[arg(long, value_name = "HOST")]
        san: Vec<String>,
        /// Directory to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

/// Runs a `cohort cert` command.
pub fn run(cmd: CertCmd) -> Result<()> {
    match cmd {
        CertCmd::Ca { out } => {
            let (cert, key) = make_ca()?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            write_new(&out.join(CA_CERT), &cert, 0o644)?;
            write_new(&out.join(CA_KEY), &key, 0o600)?;
            crate::out::out!(
                "wrote {} (give to every node: --tls-ca) and {} (keep private)",
                out.join(CA_CERT).display(),
                out.join(CA_KEY).display()
            );
        }
        CertCmd::Node { ca, name, san, out } => {
            let read = |f: &str| {
                let p = ca.join(f);
                std::fs::read_to_string(&p).with_context(|| {
                    format!(
                        "{} (make the CA with `cohort cert ca --out DIR`)",
                        p.display()
                    )
                })
            };
            let (cert, key) = make_node(&read(CA_CERT)?, &read(CA_KEY)?, &name, &san)?;
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let cert_path = out.join(format!("{name}.pem"));
            let key_path = out.join(format!("{name}-key.pem"));
            write_new(&cert_path, &cert, 0o644)?;
            write_new(&key_path, &key, 0o600)?;
            crate::out::out!(
                "wrote {c} and {k}; start the node with --name {name} --tls-cert {c} --tls-key {k} --tls-ca {ca}",
                c = cert_path.display(),
                k = key_path.display(),
                ca = ca.join(CA_CERT).display()
            );
        }
    }
    Ok(())
}

/// A self-signed CA: certificate and key, PEM.
pub fn make_ca() -> Result<(String, String)> {
    let mut p = CertificateParams::default();
    // A name of its own, so that two development CAs are told apart
    // (a verifier looks up the issuer by name).
    p.distinguished_name.push(
        DnType::CommonName,
        format!("Cohort development CA {:08x}", rand::random::<u32>()),
    );
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate()?;
    let cert = p.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A node certificate for `name` (valid for its host and `extra` names,
/// server and client authentication), signed by the CA given as PEM.
pub fn make_node(
    ca_cert: &str,
    ca_key: &str,
    name: &str,
    extra: &[String],
) -> Result<(String, String)> {
    let node = NodeName::new(name).map_err(|e| anyhow!("--name: {e}"))?;
    let host = node
        .as_str()
        .rsplit_once('@')
        .map(|(_, h)| h.to_string())
        .unwrap_or_default();
    let ca_key = KeyPair::from_pem(ca_key).map_err(|e| anyhow!("the CA key: {e}"))?;
    let issuer = Issuer::from_ca_cert_pem(ca_cert, ca_key)
        .map_err(|e| anyhow!("the CA certificate: {e}"))?;
    let mut sans = vec![host];
    sans.extend(extra.iter().cloned());
    let mut p = CertificateParams::new(sans.clone())
        .map_err(|e| anyhow!("{} is not a DNS name or IP address: {e}", sans.join(", ")))?;
    p.distinguished_name.push(DnType::CommonName, node.as_str());
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = p.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Writes a new file with `mode`; an existing file is not overwritten.
fn write_new(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("{} exists; not overwriting it", path.display())
        }
        Err(e) => return Err(anyhow!("{}: {e}", path.display())),
    };
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
