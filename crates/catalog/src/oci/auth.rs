//! Registry authentication, from the environment only: `TTA_REGISTRY_TOKEN` is sent as a
//! bearer token as is; `TTA_REGISTRY_USERNAME` and `TTA_REGISTRY_PASSWORD` are sent as basic
//! credentials, or, when the registry answers `401` with a `Bearer` challenge (the
//! distribution token protocol ghcr.io, Docker Hub, Harbor and ACR speak), exchanged at
//! the challenge's realm for a token scoped to the repository. Anonymous pulls from such
//! registries take the same exchange without credentials. The realm gets the credentials,
//! so it must be HTTPS unless it is loopback or listed insecure, like the registry itself.

use super::OciError;
use std::collections::HashMap;
use std::sync::Mutex;

/// Credentials from the environment.
#[derive(Clone, Default)]
pub(super) enum Credentials {
    /// None: anonymous.
    #[default]
    Anonymous,
    /// A bearer token, sent as is.
    Token(String),
    /// A user name and password.
    Basic(String, String),
}

impl Credentials {
    /// The variables' credentials.
    pub(super) fn from_env() -> Self {
        if let Ok(token) = std::env::var("TTA_REGISTRY_TOKEN") {
            return Credentials::Token(token);
        }
        match (
            std::env::var("TTA_REGISTRY_USERNAME"),
            std::env::var("TTA_REGISTRY_PASSWORD"),
        ) {
            (Ok(user), Ok(password)) => Credentials::Basic(user, password),
            _ => Credentials::Anonymous,
        }
    }

    /// `request` with these credentials, as a registry reads them before any challenge.
    pub(super) fn apply(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Credentials::Anonymous => request,
            Credentials::Token(token) => request.bearer_auth(token),
            Credentials::Basic(user, password) => request.basic_auth(user, Some(password)),
        }
    }
}

/// A `WWW-Authenticate: Bearer realm=…,service=…,scope=…` challenge.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Challenge {
    pub(super) realm: String,
    pub(super) service: Option<String>,
    pub(super) scope: Option<String>,
}

impl Challenge {
    /// Reads a `Bearer` challenge; `None` for another scheme or one without a realm.
    pub(super) fn parse(header: &str) -> Option<Challenge> {
        let (scheme, params) = header.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let mut values = HashMap::new();
        let mut rest = params.trim();
        while !rest.is_empty() {
            let (key, after) = rest.split_once('=')?;
            let after = after.trim_start();
            let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            } else {
                after.split_once(',').map_or((after, ""), |(v, t)| (v, t))
            };
            values.insert(key.trim().to_ascii_lowercase(), value.to_owned());
            rest = tail.trim_start().trim_start_matches(',').trim_start();
        }
        Some(Challenge {
            realm: values.remove("realm")?,
            service: values.remove("service"),
            scope: values.remove("scope"),
        })
    }
}

/// Tokens obtained by exchange, by repository (`registry/repository`), for one client's
/// requests.
#[derive(Default)]
pub(super) struct Tokens(Mutex<HashMap<String, String>>);

impl Tokens {
    /// A token already obtained for the repository `key`.
    pub(super) fn get(&self, key: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Exchanges the credentials for a token at the challenge's realm, and keeps it for
    /// the repository `key`.
    pub(super) async fn exchange(
        &self,
        http: &reqwest::Client,
        credentials: &Credentials,
        challenge: &Challenge,
        insecure: &[String],
        reference: &str,
        key: &str,
    ) -> Result<String, OciError> {
        let refused = |why: String| OciError::Unauthorized {
            reference: reference.to_owned(),
            why,
        };
        let mut realm = reqwest::Url::parse(&challenge.realm)
            .map_err(|_| refused(format!("the token realm {:?} is not a URL", challenge.realm)))?;
        let authority = match realm.port() {
            Some(port) => format!("{}:{port}", realm.host_str().unwrap_or_default()),
            None => realm.host_str().unwrap_or_default().to_owned(),
        };
        if realm.scheme() != "https" && !super::plain_http_allowed(&authority, insecure) {
            return Err(refused(format!(
                "the token realm {} is not HTTPS; credentials are sent only over HTTPS, to loopback, or to a registry.insecure host",
                challenge.realm
            )));
        }
        for (key, value) in [("service", &challenge.service), ("scope", &challenge.scope)] {
            if let Some(value) = value {
                realm.query_pairs_mut().append_pair(key, value);
            }
        }
        let mut request = http.get(realm);
        if let Credentials::Basic(user, password) = credentials {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.map_err(|e| OciError::Unreachable {
            reference: reference.to_owned(),
            what: if e.is_timeout() {
                "the token service timed out".to_owned()
            } else {
                "the token service: connection failed".to_owned()
            },
        })?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(refused(format!(
                "the token service {} answered {status}",
                challenge.realm
            )));
        }
        let body = response.bytes().await.map_err(|_| OciError::Unreachable {
            reference: reference.to_owned(),
            what: "the token service broke off".to_owned(),
        })?;
        if body.len() > 64 << 10 {
            return Err(refused("the token service's answer is over 64 KiB".to_owned()));
        }
        let answer: serde_json::Value =
            serde_json::from_slice(&body).map_err(|_| refused("the token service's answer is not JSON".to_owned()))?;
        let token = answer["token"]
            .as_str()
            .or_else(|| answer["access_token"].as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| refused("the token service's answer has no token".to_owned()))?
            .to_owned();
        let mut tokens = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if tokens.len() >= 64 {
            tokens.clear();
        }
        tokens.insert(key.to_owned(), token.clone());
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse_with_commas_inside_quotes() {
        let challenge = Challenge::parse(
            r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#,
        )
        .expect("a challenge");
        assert_eq!(
            challenge,
            Challenge {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            }
        );
        assert_eq!(
            Challenge::parse("bearer realm=https://a/t").map(|c| c.realm),
            Some("https://a/t".into())
        );
        assert!(Challenge::parse(r#"Basic realm="registry""#).is_none());
        assert!(Challenge::parse(r#"Bearer service="x""#).is_none());
        assert!(Challenge::parse(r#"Bearer realm="unterminated"#).is_none());
    }
}
