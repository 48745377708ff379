//! `[tenants.http]`: the outgoing HTTP a tenant's guests may make (`wasi:http`), and how.
//!
//! An `allow` entry names a scheme, a host and an optional port: `https://api.openai.com`,
//! `https://*.internal.example`, `http://127.0.0.1:9000`. A bare host means https only,
//! and an entry without a port allows its scheme's default port only, so a config never
//! opens more than it says. Certificates are checked against the Mozilla roots
//! (`webpki-roots`) or the system store, plus the tenant's own CAs for private services.

use serde::Deserialize;
use std::path::PathBuf;

/// Outgoing HTTP a tenant's guests may make.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpPolicy {
    /// Destinations guests may call (see the module doc). Empty: no outgoing HTTP at all.
    pub allow: Vec<String>,
    /// Time limit per request, from sending it to the end of the response body, in ms.
    pub timeout_ms: u64,
    /// Time to connect, TLS handshake included, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Time from sending a request to the response head, in milliseconds.
    pub first_byte_timeout_ms: u64,
    /// Longest wait between two parts of a response body, in milliseconds.
    pub between_bytes_timeout_ms: u64,
    /// Largest response body per request, in bytes.
    pub max_response_bytes: usize,
    /// Connections the tenant's guests hold open at once, across their calls.
    pub max_connections: usize,
    /// How long an unused connection is kept for the next request, in milliseconds.
    pub idle_timeout_ms: u64,
    /// Where trusted root certificates come from.
    pub roots: Roots,
    /// Extra CA certificates (PEM files) trusted for this tenant's requests.
    pub ca_files: Vec<PathBuf>,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            allow: Vec::new(),
            timeout_ms: 5_000,
            connect_timeout_ms: 2_000,
            first_byte_timeout_ms: 5_000,
            between_bytes_timeout_ms: 2_000,
            max_response_bytes: 1 << 20,
            max_connections: 16,
            idle_timeout_ms: 30_000,
            roots: Roots::Mozilla,
            ca_files: Vec::new(),
        }
    }
}

/// The root certificates HTTPS requests are verified against.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Roots {
    /// The Mozilla root program, built in (`webpki-roots`): the same on every machine.
    #[default]
    Mozilla,
    /// The operating system's store, read once when the tenant's client is first built.
    System,
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS.
    Https,
}

impl Scheme {
    /// The port a URL of this scheme means when it names none.
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }

    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// One parsed `allow` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The scheme it allows.
    pub scheme: Scheme,
    /// The host, lowercase; `*.suffix` matches every subdomain of `suffix`.
    pub host: String,
    /// The port it allows (the scheme's default when the entry names none).
    pub port: u16,
}

impl Destination {
    /// Parses an `allow` entry, or says what is wrong with it.
    pub fn parse(entry: &str) -> Result<Destination, String> {
        let (scheme, rest) = match entry.split_once("://") {
            Some(("https", rest)) => (Scheme::Https, rest),
            Some(("http", rest)) => (Scheme::Http, rest),
            Some((other, _)) => return Err(format!("scheme `{other}` is not http or https")),
            None => (Scheme::Https, entry),
        };
        if rest.contains(['/', '?', '#', '@']) {
            return Err("name a scheme, a host and a port only (no path, query or user)".into());
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| format!("port `{port}` is not a number from 1 to 65535"))?,
            ),
            None => (rest, scheme.default_port()),
        };
        let name = host.strip_prefix("*.").unwrap_or(host);
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !name.starts_with('.')
            && !name.ends_with('.');
        if !valid {
            return Err(format!("`{host}` is not a host name or IPv4 address"));
        }
        Ok(Destination {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// Whether a request to `scheme://host:port` is to this destination.
    pub fn matches(&self, scheme: Scheme, host: &str, port: u16) -> bool {
        if scheme != self.scheme || port != self.port {
            return false;
        }
        let host = host.to_ascii_lowercase();
        match self.host.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|head| head.ends_with('.') && head.len() > 1),
            None => host == self.host,
        }
    }
}

impl HttpPolicy {
    /// The `allow` entry that lets a guest reach `scheme://host:port` (`port` is the URL's,
    /// if it names one): the operator's text, which is also the bounded label its requests
    /// are counted under.
    pub fn matching_entry(&self, scheme: Scheme, host: &str, port: Option<u16>) -> Option<&str> {
        let port = port.unwrap_or(scheme.default_port());
        self.allow
            .iter()
            .find(|entry| Destination::parse(entry).is_ok_and(|d| d.matches(scheme, host, port)))
            .map(String::as_str)
    }

    /// Every problem with this policy, each prefixed with `at` (`tenants[0] (`acme`)`).
    pub fn check(&self, at: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for (i, entry) in self.allow.iter().enumerate() {
            if let Err(why) = Destination::parse(entry) {
                problems.push(format!(
                    "{at}: http.allow[{i}] `{}`: {why}; write e.g. `https://api.example.com`, `https://*.internal.example` or `http://127.0.0.1:9000`",
                    entry.chars().take(80).collect::<String>()
                ));
            }
        }
        let positive = [
            ("timeout_ms", self.timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("first_byte_timeout_ms", self.first_byte_timeout_ms),
            ("between_bytes_timeout_ms", self.between_bytes_timeout_ms),
            ("max_response_bytes", self.max_response_bytes as u64),
            ("max_connections", self.max_connections as u64),
        ];
        for (key, value) in positive {
            if value == 0 {
                problems.push(format!("{at}: http.{key} must be greater than 0"));
            }
        }
        for (i, path) in self.ca_files.iter().enumerate() {
            match std::fs::read(path) {
                Err(e) => problems.push(format!(
                    "{at}: http.ca_files[{i}] `{}` cannot be read: {e}",
                    path.display()
                )),
                Ok(pem) if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") => {
                    problems.push(format!(
                        "{at}: http.ca_files[{i}] `{}` holds no PEM certificate (`-----BEGIN CERTIFICATE-----`)",
                        path.display()
                    ));
                }
                Ok(_) => {}
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(allow: &[&str]) -> HttpPolicy {
        HttpPolicy {
            allow: allow.iter().map(|s| (*s).to_owned()).collect(),
            ..HttpPolicy::default()
        }
    }

    #[test]
    fn entries_name_scheme_host_and_port() {
        let p = policy(&[
            "https://api.openai.com",
            "https://*.internal.example",
            "http://127.0.0.1:9000",
            "bare.example",
        ]);
        let hit = |s, h, port| p.matching_entry(s, h, port);
        assert_eq!(
            hit(Scheme::Https, "API.openai.com", None),
            Some("https://api.openai.com")
        );
        assert_eq!(
            hit(Scheme::Https, "api.openai.com", Some(443)),
            Some("https://api.openai.com")
        );
        assert_eq!(hit(Scheme::Https, "api.openai.com", Some(8443)), None);
        assert_eq!(hit(Scheme::Http, "api.openai.com", None), None, "scheme mismatch");
        assert_eq!(
            hit(Scheme::Https, "a.b.internal.example", None),
            Some("https://*.internal.example")
        );
        assert_eq!(hit(Scheme::Https, "internal.example", None), None);
        assert_eq!(hit(Scheme::Https, "evilinternal.example", None), None);
        assert_eq!(
            hit(Scheme::Http, "127.0.0.1", Some(9000)),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(hit(Scheme::Http, "127.0.0.1", Some(9001)), None);
        assert_eq!(hit(Scheme::Https, "bare.example", None), Some("bare.example"));
        assert_eq!(
            hit(Scheme::Http, "bare.example", None),
            None,
            "a bare host is https only"
        );
    }

    #[test]
    fn bad_entries_and_values_are_named() {
        let mut p = policy(&["ftp://x", "https://a/b", "https://a:0", "https://"]);
        p.max_connections = 0;
        p.ca_files = vec!["/nonexistent/ca.pem".into()];
        let problems = p.check("tenants[0] (`a`)");
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(
            problems[0].contains("http.allow[0] `ftp://x`: scheme `ftp`"),
            "{problems:#?}"
        );
        assert!(problems[4].contains("http.max_connections"), "{problems:#?}");
        assert!(problems[5].contains("http.ca_files[0]"), "{problems:#?}");
    }
}
