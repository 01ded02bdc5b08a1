//! The webhook SSRF guard: which addresses a webhook may reach, and a DNS resolver for
//! reqwest that checks every address a name resolves to and hands reqwest only the
//! checked ones, so the connection is pinned to what was checked (no DNS rebinding).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Host names of cloud metadata services; refused whatever they resolve to.
pub const METADATA_NAMES: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.azure.internal",
    "metadata.tencentyun.com",
];

/// Why an address is refused, or `None` for an ordinary public unicast address.
pub fn classify(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    let reason = match o {
        [169, 254, 169, 254] => "cloud metadata (link-local)",
        [0, ..] if ip.is_unspecified() => "unspecified",
        [0, ..] => "this-network (0.0.0.0/8)",
        [127, ..] => "loopback",
        [10, ..] => "private (RFC 1918)",
        [172, b, ..] if (16..32).contains(&b) => "private (RFC 1918)",
        [192, 168, ..] => "private (RFC 1918)",
        [169, 254, ..] => "link-local",
        [100, b, ..] if (64..128).contains(&b) => "shared address space (CGNAT 100.64.0.0/10)",
        [192, 0, 0, _] => "IETF protocol assignments (192.0.0.0/24)",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "documentation (TEST-NET)",
        [198, 18 | 19, ..] => "benchmarking (198.18.0.0/15)",
        [255, 255, 255, 255] => "broadcast",
        [224..=239, ..] => "multicast",
        [240..=255, ..] => "reserved (240.0.0.0/4)",
        _ => return None,
    };
    Some(reason)
}

fn classify_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    // Forms that carry an IPv4 address: judged by that address.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    if s[..5] == [0; 5] && s[5] == 0 && !(s[6] == 0 && s[7] <= 1) {
        // IPv4-compatible (::a.b.c.d, deprecated): never a real destination.
        return Some("IPv4-compatible IPv6 (deprecated)");
    }
    if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
        // NAT64 well-known prefix 64:ff9b::/96.
        return classify_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        // 6to4 2002::/16 carries an IPv4 address in bits 16..48.
        return classify_v4(embedded(s[1], s[2]));
    }
    let reason = match s {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        [0xfe80..=0xfebf, ..] => "link-local",
        [0xfec0..=0xfeff, ..] => "site-local (deprecated)",
        [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] => "cloud metadata (unique local)",
        [0xfc00..=0xfdff, ..] => "unique local (fc00::/7)",
        [0xff00..=0xffff, ..] => "multicast",
        [0x2001, 0x0db8, ..] => "documentation (2001:db8::/32)",
        [0x3fff, 0..=0x0fff, ..] => "documentation (3fff::/20)",
        [0x0100, 0, 0, 0, ..] => "discard-only (100::/64)",
        [0x2001, 0, ..] => "Teredo (2001::/32)",
        _ => return None,
    };
    Some(reason)
}

/// Parses `allow_targets` entries: a CIDR (`10.0.0.0/8`) or a bare address (`/32`, `/128`).
pub fn parse_allow(entries: &[String]) -> Result<Vec<IpNet>, String> {
    entries
        .iter()
        .map(|e| {
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map(|n| n.trunc())
                .map_err(|_| format!("allow_targets entry '{e}' is not an IP address or CIDR"))
        })
        .collect()
}

/// Is `ip` allowed as a webhook destination? `Err` names the address and why not.
pub fn check(ip: IpAddr, allow: &[IpNet]) -> Result<(), String> {
    let canonical = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    if allow
        .iter()
        .any(|n| n.contains(&ip) || n.contains(&canonical))
    {
        return Ok(());
    }
    match classify(ip) {
        None => Ok(()),
        Some(reason) => Err(format!(
            "{ip} ({reason}) is not allowed; webhooks reach such addresses only when allow_targets lists them (e.g. allow_targets = [\"{}\"])",
            IpNet::from(canonical)
        )),
    }
}

/// Is `host` a well-known cloud metadata name? (case-insensitive, trailing dot ignored)
pub fn is_metadata_name(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    METADATA_NAMES.contains(&h.as_str())
}

/// Checks what can be checked of a webhook URL without DNS: scheme, an IP literal host
/// against the guard, a metadata name. Names are checked at delivery, after resolution.
pub fn check_url(url: &str, allow: &[IpNet]) -> Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("not a valid URL: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err("must be an http(s) URL".to_owned());
    }
    // The URL parser normalises IP literals (`0x7f.1`, `2130706433`, `[::1]`), so a host
    // that parses as an address here is the address reqwest will connect to.
    let host = u.host_str().ok_or("has no host")?;
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) => check(ip, allow),
        Err(_) if is_metadata_name(host) => Err(format!(
            "'{host}' is a cloud metadata service name; webhooks may never reach it"
        )),
        Err(_) => Ok(()),
    }
}

/// A refused webhook destination, as the error reqwest carries back from the resolver.
#[derive(Debug, Clone, thiserror::Error)]
#[error("webhook target refused: {0}")]
pub struct Refused(pub String);

/// Why a name gave no address to connect to.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The guard refused the name or one of its addresses (permanent).
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The lookup failed (may be temporary: retried).
    #[error("cannot resolve '{host}': {source}")]
    Lookup {
        /// The name.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
}

/// Resolves a host once, checks every address; `Ok` holds exactly the checked addresses.
pub async fn resolve_checked(host: &str, allow: &[IpNet]) -> Result<Vec<SocketAddr>, ResolveError> {
    if is_metadata_name(host) {
        return Err(Refused(format!("'{host}' is a cloud metadata service name")).into());
    }
    let lookup = |source| ResolveError::Lookup {
        host: host.to_owned(),
        source,
    };
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
        .await
        .map_err(lookup)?
        .collect();
    if addrs.is_empty() {
        return Err(lookup(std::io::Error::other("no address")));
    }
    for a in &addrs {
        check(a.ip(), allow)
            .map_err(|m| Refused(format!("'{host}' resolves to a refused address: {m}")))?;
    }
    Ok(addrs)
}

/// reqwest's resolver for webhooks: every name goes through [`resolve_checked`], and the
/// connection can only go to an address that passed (reqwest does not resolve again).
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    allow: Arc<Vec<IpNet>>,
}

impl GuardedResolver {
    /// A resolver admitting public addresses plus `allow`.
    pub fn new(allow: Vec<IpNet>) -> Self {
        GuardedResolver {
            allow: Arc::new(allow),
        }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            match resolve_checked(&host, &allow).await {
                Ok(addrs) => Ok(Box::new(addrs.into_iter()) as Addrs),
                Err(ResolveError::Refused(refused)) => {
                    tracing::warn!(host = %host, reason = %refused.0, "webhook target refused by the ssrf guard");
                    Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>)
                }
                Err(e) => Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

/// The [`Refused`] somewhere in an error's source chain, if any.
pub fn refused_in<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(r) = e.downcast_ref::<Refused>() {
            return Some(r);
        }
        cur = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_ip(addr: &str, allow: &[&str], expected: Result<(), &str>) {
        let ip: IpAddr = addr.parse().unwrap();
        let allow = parse_allow(&allow.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        let got = check(ip, &allow);
        match expected {
            Ok(()) => assert_eq!(got, Ok(()), "{addr}"),
            Err(reason) => {
                let msg = got.expect_err(addr);
                assert!(msg.contains(reason), "{addr}: {msg:?} lacks {reason:?}");
            }
        }
    }

    #[test]
    fn classifier_table() {
        let none: &[&str] = &[];
        for (addr, expected) in [
            ("8.8.8.8", Ok(())),
            ("1.1.1.1", Ok(())),
            ("2606:4700:4700::1111", Ok(())),
            ("::ffff:8.8.8.8", Ok(())),
            ("127.0.0.1", Err("loopback")),
            ("127.255.1.2", Err("loopback")),
            ("::1", Err("loopback")),
            ("0.0.0.0", Err("unspecified")),
            ("::", Err("unspecified")),
            ("0.1.2.3", Err("this-network")),
            ("10.1.2.3", Err("private")),
            ("172.16.0.1", Err("private")),
            ("172.31.255.255", Err("private")),
            ("172.32.0.1", Ok(())),
            ("192.168.1.1", Err("private")),
            ("169.254.169.254", Err("cloud metadata")),
            ("169.254.1.1", Err("link-local")),
            ("100.64.0.1", Err("CGNAT")),
            ("100.100.100.200", Err("CGNAT")),
            ("100.128.0.1", Ok(())),
            ("192.0.0.192", Err("IETF")),
            ("192.0.2.1", Err("documentation")),
            ("198.51.100.7", Err("documentation")),
            ("203.0.113.9", Err("documentation")),
            ("198.18.0.1", Err("benchmarking")),
            ("224.0.0.1", Err("multicast")),
            ("239.255.255.250", Err("multicast")),
            ("255.255.255.255", Err("broadcast")),
            ("240.0.0.1", Err("reserved")),
            ("fe80::1", Err("link-local")),
            ("fec0::1", Err("site-local")),
            ("fc00::1", Err("unique local")),
            ("fd12:3456::1", Err("unique local")),
            ("fd00:ec2::254", Err("cloud metadata")),
            ("ff02::1", Err("multicast")),
            ("2001:db8::1", Err("documentation")),
            ("3fff::1", Err("documentation")),
            ("100::1", Err("discard")),
            ("2001:0:4136:e378::1", Err("Teredo")),
            // IPv4 inside IPv6: judged by the IPv4 address.
            ("::ffff:127.0.0.1", Err("loopback")),
            ("::ffff:169.254.169.254", Err("cloud metadata")),
            ("::ffff:10.0.0.1", Err("private")),
            ("::127.0.0.1", Err("IPv4-compatible")),
            ("64:ff9b::7f00:1", Err("loopback")),
            ("64:ff9b::808:808", Ok(())),
            ("2002:c0a8:0101::1", Err("private")),
            ("2002:0808:0808::1", Ok(())),
        ] {
            check_ip(addr, none, expected);
        }
    }

    #[test]
    fn allow_list_admits_exactly_its_ranges() {
        check_ip("127.0.0.1", &["127.0.0.1/32"], Ok(()));
        check_ip("127.0.0.2", &["127.0.0.1/32"], Err("loopback"));
        check_ip("::ffff:127.0.0.1", &["127.0.0.1"], Ok(()));
        check_ip("10.9.8.7", &["10.0.0.0/8"], Ok(()));
        check_ip("::1", &["127.0.0.0/8"], Err("loopback"));
        check_ip("::1", &["::1/128"], Ok(()));
        check_ip("169.254.169.254", &["10.0.0.0/8"], Err("cloud metadata"));
        assert!(parse_allow(&["nope".to_owned()]).is_err());
        assert!(parse_allow(&["10.0.0.0/33".to_owned()]).is_err());
        assert_eq!(
            check("127.0.0.1".parse().unwrap(), &[]).unwrap_err(),
            "127.0.0.1 (loopback) is not allowed; webhooks reach such addresses only when allow_targets lists them (e.g. allow_targets = [\"127.0.0.1/32\"])"
        );
    }

    #[test]
    fn metadata_names() {
        for (h, expected) in [
            ("metadata.google.internal", true),
            ("METADATA.google.internal.", true),
            ("metadata", true),
            ("instance-data.ec2.internal", true),
            ("hooks.example.com", false),
            ("metadata.example.com", false),
        ] {
            assert_eq!(is_metadata_name(h), expected, "{h}");
        }
    }

    #[tokio::test]
    async fn names_are_checked_after_resolution() {
        let refused = resolve_checked("localhost", &[]).await.unwrap_err();
        let msg = refused.to_string();
        assert!(matches!(refused, ResolveError::Refused(_)), "{msg}");
        assert!(
            msg.contains("webhook target refused: 'localhost' resolves to a refused address")
                && msg.contains("loopback"),
            "{msg}"
        );
        let allow = parse_allow(&["127.0.0.0/8".to_owned(), "::1/128".to_owned()]).unwrap();
        let addrs = resolve_checked("localhost", &allow).await.unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        let meta = resolve_checked("metadata.google.internal", &allow)
            .await
            .unwrap_err();
        assert!(matches!(meta, ResolveError::Refused(_)), "{meta}");
        assert!(meta.to_string().contains("cloud metadata"), "{meta}");
        // A failed lookup is not a refusal: it is retried.
        let gone = resolve_checked("no-such-host.invalid", &allow)
            .await
            .unwrap_err();
        assert!(matches!(gone, ResolveError::Lookup { .. }), "{gone}");
    }
}
