//! Cookie authentication: HMAC-SHA256 proofs over the handshake transcript.
//!
//! Both sides prove that they know the shared cookie without sending it:
//! each proof is an HMAC keyed by the cookie over both fresh nonces, both
//! names and both creations, with a label that differs per direction so a
//! proof can never be replayed as the other side's.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::pid::NodeName;

/// Length of the handshake nonces, in bytes.
pub const NONCE_LEN: usize = 32;

/// Length of an authentication proof (HMAC-SHA256), in bytes.
pub const PROOF_LEN: usize = 32;

/// A fresh random value that makes each handshake's proofs unique.
pub type Nonce = [u8; NONCE_LEN];

/// The shared secret of a cluster. Never sent over the wire; `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Cookie(Vec<u8>);

impl Cookie {
    /// Wraps a secret.
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Cookie(secret.into())
    }

    /// The secret bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Cookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cookie(..)")
    }
}

/// Which side of the handshake a proof comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The node that opened the connection.
    Dialer,
    /// The node that accepted it.
    Acceptor,
}

/// Everything both sides know after the first two handshake frames.
#[derive(Debug, Clone)]
pub struct Transcript<'a> {
    /// Dialer's node name.
    pub dialer: &'a NodeName,
    /// Dialer's creation.
    pub dialer_creation: u32,
    /// Dialer's nonce.
    pub dialer_nonce: &'a Nonce,
    /// Acceptor's node name.
    pub acceptor: &'a NodeName,
    /// Acceptor's creation.
    pub acceptor_creation: u32,
    /// Acceptor's nonce.
    pub acceptor_nonce: &'a Nonce,
}

fn mac(cookie: &Cookie, role: Role, t: &Transcript<'_>) -> Hmac<Sha256> {
    let mut m =
        Hmac::<Sha256>::new_from_slice(cookie.as_bytes()).expect("HMAC takes keys of any length");
    m.update(match role {
        Role::Dialer => b"cohort-v1 dialer proof\0",
        Role::Acceptor => b"cohort-v1 acceptor proof",
    });
    for name in [t.dialer, t.acceptor] {
        m.update(&(name.as_str().len() as u32).to_be_bytes());
        m.update(name.as_str().as_bytes());
    }
    m.update(&t.dialer_creation.to_be_bytes());
    m.update(&t.acceptor_creation.to_be_bytes());
    m.update(t.dialer_nonce);
    m.update(t.acceptor_nonce);
    m
}

/// Computes the proof `role` sends.
pub fn prove(cookie: &Cookie, role: Role, t: &Transcript<'_>) -> [u8; PROOF_LEN] {
    mac(cookie, role, t).finalize().into_bytes().into()
}

/// Checks a proof received from `role`, in constant time.
pub fn verify(cookie: &Cookie, role: Role, t: &Transcript<'_>, proof: &[u8; PROOF_LEN]) -> bool {
    mac(cookie, role, t).verify_slice(proof).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_depend_on_cookie_role_and_nonces() {
        let (a, b) = (NodeName::new("a@h").unwrap(), NodeName::new("b@h").unwrap());
        let (na, nb) = ([1u8; 32], [2u8; 32]);
        let t = Transcript {
            dialer: &a,
            dialer_creation: 1,
            dialer_nonce: &na,
            acceptor: &b,
            acceptor_creation: 2,
            acceptor_nonce: &nb,
        };
        let c = Cookie::new("secret");
        let p = prove(&c, Role::Dialer, &t);
        assert!(verify(&c, Role::Dialer, &t, &p));
        assert!(
            !verify(&c, Role::Acceptor, &t, &p),
            "a dialer proof must not pass as acceptor's"
        );
        assert!(!verify(&Cookie::new("other"), Role::Dialer, &t, &p));
        let t2 = Transcript {
            acceptor_nonce: &na,
            ..t.clone()
        };
        assert!(!verify(&c, Role::Dialer, &t2, &p));
    }
}
