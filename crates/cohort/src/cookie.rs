//! Where a node's cookie comes from: a string, a file, or the per-user
//! default file `~/.cohort.cookie`, created with mode 0600 and random
//! content on first use, like Erlang's `~/.erlang.cookie`.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rand::Rng;

pub use crate::core::auth::Cookie;

/// Why a cookie could not be had. The node does not start; nothing was
/// written except, for [`CookieError::Create`], possibly a partial file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CookieError {
    /// The cookie given as a value is empty.
    #[error("the cookie is empty")]
    Empty,
    /// The cookie file holds no cookie on its first line.
    #[error("{} is empty", path.display())]
    EmptyFile {
        /// The file.
        path: PathBuf,
    },
    /// No home directory to find the default cookie file in.
    #[error("HOME is not set; give a cookie or a cookie file")]
    NoHome,
    /// The cookie file could not be read (or its metadata not read).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Others than its owner may read or write the cookie file.
    #[error("{} must be accessible by its owner only (mode is {mode:o}; run chmod 600)", path.display())]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The default cookie file could not be created or written.
    #[error("cannot create {}: {source}", path.display())]
    Create {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// How a node finds its cookie.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum CookieSource {
    /// This secret.
    Value(String),
    /// The first line of this file, as OTP reads `~/.erlang.cookie`
    /// (surrounding whitespace and the line end ignored; later lines are
    /// not part of the cookie).
    File(PathBuf),
    /// The per-user default file, created if missing.
    #[default]
    Default,
}

/// `$HOME/.cohort.cookie`.
pub fn default_cookie_path() -> Result<PathBuf, CookieError> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".cohort.cookie"))
        .ok_or(CookieError::NoHome)
}

impl CookieSource {
    /// Reads (or, for the default, creates) the cookie.
    pub fn load(&self) -> Result<Cookie, CookieError> {
        match self {
            CookieSource::Value(v) if v.is_empty() => Err(CookieError::Empty),
            CookieSource::Value(v) => Ok(Cookie::new(v.as_bytes())),
            CookieSource::File(p) => read_cookie_file(p),
            CookieSource::Default => {
                let p = default_cookie_path()?;
                if !p.exists() {
                    create_cookie_file(&p)?;
                }
                read_cookie_file(&p)
            }
        }
    }
}

fn read_cookie_file(path: &Path) -> Result<Cookie, CookieError> {
    let read = |source| CookieError::Read {
        path: path.to_path_buf(),
        source,
    };
    let text = fs::read_to_string(path).map_err(read)?;
    // The first line, as OTP reads `~/.erlang.cookie`; a trailing newline
    // or surrounding blanks are not part of it.
    let secret = text.lines().next().unwrap_or("").trim();
    if secret.is_empty() {
        return Err(CookieError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).map_err(read)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(CookieError::Permissions {
                path: path.to_path_buf(),
                mode: mode & 0o777,
            });
        }
    }
    Ok(Cookie::new(secret.as_bytes()))
}

/// Creates `path` with mode 0600 holding 20 random uppercase letters.
pub fn create_cookie_file(path: &Path) -> Result<(), CookieError> {
    let create = |source| CookieError::Create {
        path: path.to_path_buf(),
        source,
    };
    let mut rng = rand::rng();
    let secret: String = (0..20)
        .map(|_| rng.random_range(b'A'..=b'Z') as char)
        .collect();
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(create)?;
    f.write_all(secret.as_bytes()).map_err(create)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_cookie_is_private_and_stable() {
        let dir = std::env::temp_dir().join(format!("cohort-cookie-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c");
        let _ = fs::remove_file(&p);
        create_cookie_file(&p).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let a = CookieSource::File(p.clone()).load().unwrap();
        let b = CookieSource::File(p.clone()).load().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_bytes().len(), 20);
        assert!(
            create_cookie_file(&p).is_err(),
            "an existing cookie must never be overwritten"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
            let err = CookieSource::File(p.clone()).load().unwrap_err();
            assert!(
                matches!(err, CookieError::Permissions { mode: 0o644, .. }),
                "{err}"
            );
            assert!(err.to_string().contains("owner only"), "{err}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_cookie_is_the_first_line_of_its_file() {
        let dir = std::env::temp_dir().join(format!("cohort-cookie-line-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            fs::write(&p, text).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
            }
            CookieSource::File(p).load()
        };
        let plain = write("plain", "SECRET").unwrap();
        assert_eq!(write("newline", "SECRET\n").unwrap(), plain);
        assert_eq!(write("crlf", "  SECRET \r\n").unwrap(), plain);
        assert_eq!(write("more", "SECRET\nsecond line\n").unwrap(), plain);
        assert!(write("blank-first", "\nSECRET\n").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_cookies_are_rejected() {
        assert!(CookieSource::Value(String::new()).load().is_err());
    }
}
