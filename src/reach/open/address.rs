//! The caller's address: asked of a service (`--ip auto`) or given (`--ip CIDR`).
//!
//! A wrong answer opens the firewall to someone else, so both are checked:
//! - **Asked**: the answer must be exactly one address of the requested family (nothing else
//!   but a trailing newline), and one that can be someone's address on the internet:
//!   not unspecified, loopback, private (RFC 1918, IPv6 unique local), shared (100.64.0.0/10,
//!   carrier-grade NAT: other customers of the ISP share it), link-local, multicast, broadcast,
//!   reserved (240.0.0.0/4, 0.0.0.0/8) or IPv4-mapped/translated IPv6. A private or shared answer
//!   would open the group to hosts inside the VPC or the ISP, never to the caller alone.
//!   Documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are
//!   accepted: no one on the internet has them, so a rule for them opens to nobody (the tests
//!   use them).
//! - **Given**: a person may mean a private range (a VPN), so only the width is bounded: never
//!   `/0`, and nothing wider than [`WIDEST_V4`] / [`WIDEST_V6`] without `--allow-wide`. Host
//!   bits must be zero (the CIDR EC2 would store is the one the person sees).
//!
//! The service is reached over https (http only to a loopback address, for tests), within
//! [`LOOKUP_TIMEOUT`] and [`MAX_ANSWER_BYTES`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ipnet::IpNet;

/// The default `ip_url`: run by AWS, answers the IPv4 address it sees.
pub const DEFAULT_IP_URL: &str = "https://checkip.amazonaws.com";
/// An address and a newline; anything longer is not one address.
pub const MAX_ANSWER_BYTES: usize = 64;
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// The widest given IPv4 CIDR without `--allow-wide` (256 addresses).
pub const WIDEST_V4: u8 = 24;
/// The widest given IPv6 CIDR without `--allow-wide` (a customer's /56).
pub const WIDEST_V6: u8 = 56;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    fn of(ip: IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("the address service {url} could not be asked: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the address service {url} answered {why}: pass --ip CIDR instead")]
    BadAnswer { url: String, why: String },
    #[error("{0}")]
    BadCidr(String),
    #[error("no address service for IPv6 is configured: set ip6_url in [reach.open] of the laptop settings, or pass --ip CIDR")]
    NoIpv6Service,
}

/// Whether `ip` can be someone's own address on the internet (see the module doc).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let shared = a == 100 && (64..128).contains(&b);
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || shared
        || a == 0
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = first & 0xfe00 == 0xfc00;
    let link_local = first & 0xffc0 == 0xfe80;
    let mapped_or_translated = ip.to_ipv4_mapped().is_some()
        || ip.segments()[..6] == [0, 0, 0, 0, 0, 0]
        || ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || unique_local
        || link_local
        || mapped_or_translated)
}

/// The one address in a service's answer, or why the answer is not one.
pub fn parse_answer(body: &[u8], family: Family) -> Result<IpAddr, String> {
    let text = std::str::from_utf8(body).map_err(|_| "bytes that are not text".to_owned())?;
    let trimmed = text.strip_suffix('\n').unwrap_or(text);
    let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
    let ip: IpAddr = trimmed
        .parse()
        .map_err(|_| "something other than one IP address".to_owned())?;
    if Family::of(ip) != family {
        return Err(format!(
            "an {} address where an {} one was asked for",
            Family::of(ip).name(),
            family.name()
        ));
    }
    if !is_public(ip) {
        return Err(format!(
            "{ip}, which is not a public address (private, shared, loopback, link-local, \
             multicast or reserved): a rule for it would not be for you alone"
        ));
    }
    Ok(ip)
}

/// The single-address network of `ip` (`/32` or `/128`).
pub fn host_net(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// `--ip CIDR` (or a bare address, meaning `/32` or `/128`), checked as the module doc says.
pub fn parse_given(text: &str, family: Family, allow_wide: bool) -> Result<IpNet, AddressError> {
    let bad = |why: String| AddressError::BadCidr(format!("--ip {text:?}: {why}"));
    let net: IpNet = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => text
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| bad("not an IP address or CIDR".into()))?,
    };
    if Family::of(net.addr()) != family {
        let hint = if family == Family::V6 {
            "--ipv6 needs an IPv6 CIDR"
        } else {
            "an IPv6 CIDR needs --ipv6"
        };
        return Err(bad(hint.into()));
    }
    if net.trunc() != net {
        return Err(bad(format!(
            "host bits are set; the network is {}",
            net.trunc()
        )));
    }
    if net.prefix_len() == 0 {
        return Err(bad(
            "that is every address on the internet; keyward never opens to it".into(),
        ));
    }
    let widest = match family {
        Family::V4 => WIDEST_V4,
        Family::V6 => WIDEST_V6,
    };
    if net.prefix_len() < widest && !allow_wide {
        return Err(bad(format!(
            "wider than /{widest}; pass --allow-wide if you mean it"
        )));
    }
    Ok(net)
}

/// Asks the service at `url` for the caller's address of `family`.
pub async fn ask(url: &str, family: Family) -> Result<IpAddr, AddressError> {
    let unreachable = |reason: String| AddressError::Unreachable {
        url: url.to_owned(),
        reason,
    };
    let target = crate::http::Target::parse(url).map_err(|e| unreachable(e.to_string()))?;
    let client = crate::http::Client::new().map_err(|e| unreachable(e.to_string()))?;
    let answer = client
        .send(
            ::http::Method::GET,
            &target,
            &[],
            b"",
            LOOKUP_TIMEOUT,
            MAX_ANSWER_BYTES,
        )
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let bad = |why: String| AddressError::BadAnswer {
        url: target.url(),
        why,
    };
    if answer.status != 200 {
        return Err(bad(format!("HTTP {}", answer.status)));
    }
    parse_answer(&answer.body, family).map_err(bad)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_pass_and_documentation_ranges_too() {
        for ip in [
            "8.8.8.8",
            "198.51.100.7",
            "203.0.113.9",
            "2001:db8::7",
            "2a00:1450::1",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn addresses_that_are_not_the_callers_alone_are_refused() {
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "::1",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn an_answer_is_exactly_one_address_of_the_family_asked_for() {
        assert_eq!(
            parse_answer(b"198.51.100.7\n", Family::V4).unwrap(),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert!(parse_answer(b"198.51.100.7", Family::V4).is_ok());
        assert!(parse_answer(b"2001:db8::7\r\n", Family::V6).is_ok());
        for (body, family, why) in [
            (&b"198.51.100.7\n"[..], Family::V6, "IPv4 address where"),
            (b"2001:db8::7\n", Family::V4, "IPv6 address where"),
            (b"198.51.100.7 198.51.100.8\n", Family::V4, "other than one"),
            (b"198.51.100.7\n\n", Family::V4, "other than one"),
            (b" 198.51.100.7\n", Family::V4, "other than one"),
            (b"198.51.100.0/24\n", Family::V4, "other than one"),
            (b"<html>", Family::V4, "other than one"),
            (b"\xff\n", Family::V4, "not text"),
            (b"10.0.0.7\n", Family::V4, "not a public address"),
            (b"", Family::V4, "other than one"),
        ] {
            let err = parse_answer(body, family).unwrap_err();
            assert!(err.contains(why), "{body:?}: {err}");
        }
    }

    #[test]
    fn a_given_address_or_cidr_is_bounded_in_width() {
        let ok = |t: &str, f, wide| parse_given(t, f, wide).unwrap().to_string();
        assert_eq!(ok("198.51.100.7", Family::V4, false), "198.51.100.7/32");
        assert_eq!(ok("198.51.100.0/24", Family::V4, false), "198.51.100.0/24");
        assert_eq!(ok("10.8.0.0/16", Family::V4, true), "10.8.0.0/16");
        assert_eq!(ok("2001:db8::7", Family::V6, false), "2001:db8::7/128");
        assert_eq!(ok("2001:db8:1::/56", Family::V6, false), "2001:db8:1::/56");
        for (text, family, wide, why) in [
            ("0.0.0.0/0", Family::V4, true, "every address"),
            ("::/0", Family::V6, true, "every address"),
            ("10.8.0.0/16", Family::V4, false, "--allow-wide"),
            ("2001:db8::/32", Family::V6, false, "--allow-wide"),
            ("198.51.100.7/24", Family::V4, false, "host bits"),
            ("2001:db8::7", Family::V4, false, "needs --ipv6"),
            ("198.51.100.7", Family::V6, false, "needs an IPv6"),
            ("web-1", Family::V4, false, "not an IP address"),
            ("198.51.100.7/33", Family::V4, false, "not an IP address"),
        ] {
            let err = parse_given(text, family, wide).unwrap_err().to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
