//! Addresses a node listens on or connects to.

use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// An address given to [`NodeBuilder::listen`](crate::NodeBuilder::listen)
/// or [`Node::connect`](crate::Node::connect): a [`SocketAddr`] (or its V4
/// and V6 forms), an `(IpAddr, u16)` or `(&str, u16)` pair, or `"host:port"`
/// text, as [`std::net::ToSocketAddrs`] takes them (a host name is resolved
/// when dialing). [`Node::local_addr`](crate::Node::local_addr)'s text is
/// one too.
pub trait ToAddr {
    /// The address as `host:port` text, the form transports take.
    fn to_addr(&self) -> String;
}

impl ToAddr for str {
    fn to_addr(&self) -> String {
        self.to_string()
    }
}

impl ToAddr for String {
    fn to_addr(&self) -> String {
        self.clone()
    }
}

impl ToAddr for SocketAddr {
    fn to_addr(&self) -> String {
        self.to_string()
    }
}

impl ToAddr for SocketAddrV4 {
    fn to_addr(&self) -> String {
        self.to_string()
    }
}

impl ToAddr for SocketAddrV6 {
    fn to_addr(&self) -> String {
        self.to_string()
    }
}

impl ToAddr for (IpAddr, u16) {
    fn to_addr(&self) -> String {
        SocketAddr::from(*self).to_string()
    }
}

impl ToAddr for (&str, u16) {
    fn to_addr(&self) -> String {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::from((ip, self.1)).to_string(),
            Err(_) => format!("{}:{}", self.0, self.1),
        }
    }
}

impl<T: ToAddr + ?Sized> ToAddr for &T {
    fn to_addr(&self) -> String {
        (**self).to_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_gives_host_port_text() {
        let v6: SocketAddr = "[::1]:4370".parse().unwrap();
        assert_eq!(v6.to_addr(), "[::1]:4370");
        assert_eq!(("::1", 4370).to_addr(), "[::1]:4370");
        assert_eq!(("example.org", 80).to_addr(), "example.org:80");
        assert_eq!((IpAddr::from([127, 0, 0, 1]), 9).to_addr(), "127.0.0.1:9");
        assert_eq!("h:1".to_addr(), "h:1");
        let owned = String::from("h:2");
        assert_eq!(ToAddr::to_addr(&&owned), "h:2");
    }
}
