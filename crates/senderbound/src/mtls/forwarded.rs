//! RFC 9440: the client certificate forwarded by a TLS-terminating proxy in
//! the `Client-Cert` header, trusted only from configured proxies.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::ConnectInfo;
use http::request::Parts;
use ipnet::IpNet;
use senderbound_core::Error;
use senderbound_core::cert::client_cert_header;

use super::{ClientCertSource, ClientCertificate};
use crate::header::{CLIENT_CERT, CLIENT_CERT_CHAIN};

/// The addresses of the proxies whose `Client-Cert` header is believed: IP
/// addresses and CIDR ranges, IPv4 or IPv6.
///
/// ```
/// use senderbound::mtls::TrustedProxies;
///
/// let proxies = TrustedProxies::parse(["10.1.0.0/16", "192.0.2.7", "fd00::/8"]).unwrap();
/// assert!(proxies.contains("10.1.2.3".parse().unwrap()));
/// assert!(!proxies.contains("10.2.0.1".parse().unwrap()));
/// assert!(TrustedProxies::parse(["10.1.0.0/33"]).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

/// A trusted-proxy entry that is neither an IP address nor a CIDR range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidProxy(pub String);

impl fmt::Display for InvalidProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "trusted proxy {:?} is not an IP address or CIDR range",
            self.0
        )
    }
}

impl std::error::Error for InvalidProxy {}

impl TrustedProxies {
    /// Parses IP addresses (`192.0.2.7`, `::1`) and CIDR ranges
    /// (`10.0.0.0/8`, `fd00::/8`). Ranges of prefix length 0 (`0.0.0.0/0`,
    /// `::/0`), which would trust everyone, are refused.
    pub fn parse<I, S>(entries: I) -> Result<Self, InvalidProxy>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let nets = entries
            .into_iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                IpNet::from_str(entry)
                    .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                    .ok()
                    // `/0` would trust every peer: surely a mistake.
                    .filter(|net| net.prefix_len() > 0)
                    .ok_or_else(|| InvalidProxy(entry.to_owned()))
            })
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { nets })
    }

    /// The loopback addresses (`127.0.0.0/8`, `::1`): a proxy on the same host.
    pub fn loopback() -> Self {
        // Constant, valid entries; were one ever to fail, fewer peers are
        // trusted, never more.
        TrustedProxies {
            nets: ["127.0.0.0/8", "::1/128"]
                .into_iter()
                .filter_map(|net| IpNet::from_str(net).ok())
                .collect(),
        }
    }

    /// `true` if `ip` is one of the trusted proxies. IPv4-mapped IPv6
    /// addresses (from a dual-stack listener) count as their IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// `true` if no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

/// Client certificates from a trusted proxy's `Client-Cert` header, and from
/// the TLS connection for every other peer.
///
/// - A request from a trusted proxy: its `Client-Cert` header is the
///   client's certificate. No header means no certificate (the proxy's own
///   TLS certificate, if it has one, is removed from the request and never
///   taken for the client's). More
///   than one header, or one that is not a byte sequence holding a DER
///   certificate, is refused (`invalid_token`, suspicious).
/// - A request from anyone else: `Client-Cert` and `Client-Cert-Chain` are
///   removed before any check, and the connection's own
///   [`ClientCertificate`] is used, if there is one.
///
/// The TCP peer is axum's [`ConnectInfo<SocketAddr>`](ConnectInfo); serve
/// with `into_make_service_with_connect_info::<SocketAddr>()` (or with
/// `senderbound::tls::serve`). A request without it is treated as
/// coming from an untrusted peer.
#[derive(Debug, Clone)]
pub struct ForwardedClientCert {
    proxies: TrustedProxies,
}

impl ForwardedClientCert {
    /// Believes the `Client-Cert` header from these proxies only.
    pub fn new(proxies: TrustedProxies) -> Self {
        ForwardedClientCert { proxies }
    }

    fn sent_by_trusted_proxy(&self, parts: &Parts) -> bool {
        match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
            Some(ConnectInfo(peer)) => self.proxies.contains(peer.ip()),
            None => {
                warn_once_no_peer_address();
                false
            }
        }
    }
}

impl ClientCertSource for ForwardedClientCert {
    fn sanitize(&self, parts: &mut Parts) {
        let forwarded = parts.headers.contains_key(CLIENT_CERT)
            || parts.headers.contains_key(CLIENT_CERT_CHAIN);
        let has_connection_cert = parts.extensions.get::<ClientCertificate>().is_some();
        if !forwarded && !has_connection_cert {
            return;
        }
        if self.sent_by_trusted_proxy(parts) {
            // The proxy's own TLS certificate is not the client's: nothing
            // downstream may take it for one.
            parts.extensions.remove::<ClientCertificate>();
        } else if forwarded {
            parts.headers.remove(CLIENT_CERT);
            parts.headers.remove(CLIENT_CERT_CHAIN);
            tracing::debug!(
                target: "senderbound::mtls",
                "removed a Client-Cert header sent by a peer that is not a trusted proxy"
            );
        }
    }

    fn client_certificate(&self, parts: &Parts) -> Result<Option<ClientCertificate>, Error> {
        if !self.sent_by_trusted_proxy(parts) {
            return Ok(parts.extensions.get::<ClientCertificate>().cloned());
        }
        let mut values = parts.headers.get_all(CLIENT_CERT).iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(value), None) => client_cert_header(value.as_bytes())
                .map(|der| Some(ClientCertificate::from_der(der)))
                .map_err(|_| Error::CertificateMalformed),
            (Some(_), Some(_)) => Err(Error::CertificateMalformed),
        }
    }
}

/// Trusted proxies are configured but the server does not record peer
/// addresses: every forwarded certificate is ignored. Said once, loudly.
fn warn_once_no_peer_address() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    if !WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            target: "senderbound::mtls",
            "Client-Cert headers are ignored: requests carry no peer address \
             (serve with into_make_service_with_connect_info::<SocketAddr>())"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_ranges() {
        let p = TrustedProxies::parse(["10.0.0.0/8", " 192.0.2.7 ", "2001:db8::/32"]).unwrap();
        for yes in ["10.255.0.1", "192.0.2.7", "2001:db8::1", "::ffff:10.1.1.1"] {
            assert!(p.contains(yes.parse().unwrap()), "{yes}");
        }
        for no in ["11.0.0.1", "192.0.2.8", "2001:db9::1", "::ffff:11.0.0.1"] {
            assert!(!p.contains(no.parse().unwrap()), "{no}");
        }
        for bad in [
            "",
            "10.0.0.0/40",
            "example.com",
            "10.0.0.1:80",
            "*",
            "0.0.0.0/0",
            "::/0",
        ] {
            assert_eq!(
                TrustedProxies::parse([bad]),
                Err(InvalidProxy(bad.to_owned()))
            );
        }
        let lo = TrustedProxies::loopback();
        assert!(lo.contains("127.0.0.1".parse().unwrap()));
        assert!(lo.contains("::1".parse().unwrap()));
        assert!(!lo.contains("10.0.0.1".parse().unwrap()));
        assert!(TrustedProxies::default().is_empty());
    }
}
