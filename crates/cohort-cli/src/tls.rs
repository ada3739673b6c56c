//! Reloading the node's TLS files while it runs.

use cohort::Node;
use tracing::{info, warn};

/// Re-reads the TLS files (on SIGHUP or `POST /tls/reload`, named by
/// `via`): new sessions use them, sessions up keep theirs; a bad file keeps
/// the old certificate. Logs the outcome either way.
pub fn reload_tls(node: &Node, via: &str) -> Result<(), cohort::transport::tls::TlsError> {
    match node.reload_tls() {
        Ok(()) => {
            info!(node = %node.name(), "{via}: TLS certificate, key and CA reloaded; new sessions use them");
            Ok(())
        }
        Err(e @ cohort::transport::tls::TlsError::NotEnabled) => {
            info!(node = %node.name(), "{via}: nothing to reload ({e})");
            Err(e)
        }
        Err(e) => {
            warn!(node = %node.name(), error = %e, "{via}: TLS reload failed; keeping the old certificate: {e}");
            Err(e)
        }
    }
}
