//! Why a bridge could not start.

/// Why a bridge could not start.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// No EPMD answers at the configured address.
    #[error(
        "no EPMD running at {0} ({1}); start one with `epmd -daemon` (it comes with Erlang/OTP)"
    )]
    NoEpmd(String, String),
    /// EPMD refused the name (most often: the name is taken).
    #[error("EPMD refused to register {0:?} ({1}); is another node running under that name?")]
    EpmdRegister(String, String),
    /// The cookie could not be read.
    #[error("cookie: {0}")]
    Cookie(String),
    /// The listen address could not be bound.
    #[error("listen on {0}: {1}")]
    Listen(String, std::io::Error),
    /// A setting is invalid.
    #[error("{0}")]
    Config(String),
    /// A bridged scope could not be watched on the Cohort side.
    #[error("scope {0}: {1}")]
    Scope(String, cohort::PgError),
}
