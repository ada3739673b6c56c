//! The admin API's bearer token: where the node and `cohort ctl` find it.
//!
//! `COHORT_ADMIN_TOKEN` wins; else the file given with `--admin-token-file`;
//! else the per-user default `~/.cohort.admin-token`, which the node creates
//! with mode 0600 and random content on its first start (as the cluster
//! cookie `~/.cohort.cookie` is made). A file that its group or others can
//! read is refused, as the cookie file is. `cohort ctl` reads the same
//! places but never creates the file.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use rand::distr::{Alphanumeric, SampleString};

/// The environment variable that holds the token (it wins over any file).
pub const ENV: &str = "COHORT_ADMIN_TOKEN";

/// Name of the default token file in the home directory.
pub const DEFAULT_FILE: &str = ".cohort.admin-token";

/// Length of a token made by the node, in alphanumeric characters
/// (about 238 bits).
const TOKEN_CHARS: usize = 40;

/// `$HOME/.cohort.admin-token`.
pub fn default_path() -> Result<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(DEFAULT_FILE))
        .ok_or_else(|| anyhow!("HOME is not set; give --admin-token-file or {ENV}"))
}

/// The token from the environment, if set and not empty.
fn from_env() -> Option<String> {
    std::env::var(ENV).ok().filter(|v| !v.trim().is_empty())
}

/// The node's token: the environment, `file`, or the default file
/// (created if missing).
pub fn for_node(file: Option<&Path>) -> Result<String> {
    if let Some(t) = from_env() {
        return Ok(t.trim().to_string());
    }
    match file {
        Some(p) => read(p),
        None => {
            let p = default_path()?;
            if !p.exists() {
                create(&p)?;
                tracing::info!(file = %p.display(), "created the admin token file");
            }
            read(&p)
        }
    }
}

/// The token `cohort ctl` sends: the environment, `file`, or the default
/// file (never created here).
pub fn for_client(file: Option<&Path>) -> Result<String> {
    if let Some(t) = from_env() {
        return Ok(t.trim().to_string());
    }
    let p = match file {
        Some(p) => p.to_path_buf(),
        None => default_path()?,
    };
    if file.is_none() && !p.exists() {
        bail!(
            "no admin token: {} does not exist (the node creates it when started by this user; else set {ENV} or give --admin-token-file)",
            p.display()
        );
    }
    read(&p)
}

/// The first line of `path`, trimmed; refused when empty or readable by
/// anyone but its owner.
pub fn read(path: &Path) -> Result<String> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read the admin token file {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .with_context(|| format!("cannot stat {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "{} must be accessible by its owner only (mode is {:o}; run chmod 600)",
                path.display(),
                mode & 0o777
            );
        }
    }
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        bail!("{} is empty", path.display());
    }
    Ok(token.to_string())
}

/// Creates `path` with mode 0600 holding a random token; never overwrites.
pub fn create(path: &Path) -> Result<()> {
    let token = Alphanumeric.sample_string(&mut rand::rng(), TOKEN_CHARS);
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(token.as_bytes())
        .and_then(|_| f.write_all(b"\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_created_token_is_private_random_and_never_overwritten() {
        let dir = std::env::temp_dir().join(format!("cohort-token-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let (p, q) = (dir.join("t1"), dir.join("t2"));
        create(&p).unwrap();
        create(&q).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let (a, b) = (read(&p).unwrap(), read(&q).unwrap());
        assert_eq!(a.len(), TOKEN_CHARS);
        assert_ne!(a, b, "two tokens are not the same");
        assert!(create(&p).is_err(), "an existing token is never replaced");
        assert_eq!(read(&p).unwrap(), a);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for mode in [0o640, 0o604] {
                fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
                let e = read(&p).unwrap_err().to_string();
                assert!(e.contains("owner only"), "{e}");
            }
        }
        fs::write(&q, "\n").unwrap();
        assert!(read(&q).unwrap_err().to_string().contains("is empty"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
