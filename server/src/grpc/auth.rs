//! Bearer tokens with scopes. Tokens are configured as SHA-256 hashes only; a presented token
//! is hashed and compared with every configured hash in constant time. Which scope a call
//! needs follows from its gRPC path alone ([`scope_for_path`]), so the check sits in one place
//! (the [`guard`](super::guard) layer) in front of every service.

use crate::config::{Scope, TokenConfig};
use sha2::{Digest, Sha256};
use std::sync::Mutex;
use std::time::Instant;
use subtle::ConstantTimeEq;
use tonic::Status;

/// Hex SHA-256 of a token, as written in `[[tokens]] sha256`.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The scope a gRPC path needs; `None` for the services anyone may call (health, reflection).
/// Paths of no known service need `admin`, so nothing new is ever open by accident.
pub fn scope_for_path(path: &str) -> Option<Scope> {
    let service = path.trim_start_matches('/').split('/').next().unwrap_or("");
    match service {
        "grpc.health.v1.Health"
        | "grpc.reflection.v1.ServerReflection"
        | "grpc.reflection.v1alpha.ServerReflection" => None,
        "redline.v1.Submission" => Some(Scope::Submit),
        "redline.v1.Matching" => Some(Scope::Match),
        "redline.v1.Audit" => Some(Scope::Audit),
        "redline.v1.Federation" => Some(Scope::Federate),
        _ => Some(Scope::Admin),
    }
}

/// Why a call was refused, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No or unknown token.
    Unauthenticated,
    /// Valid token without the scope.
    PermissionDenied,
    /// Over the token's rate.
    RateLimited,
}

impl Refusal {
    /// Label value.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Unauthenticated => "unauthenticated",
            Refusal::PermissionDenied => "permission_denied",
            Refusal::RateLimited => "rate_limited",
        }
    }
}

/// A token bucket: `rate` calls per second on average, up to `burst` at once.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl Bucket {
    fn new(rate: f64, burst: f64) -> Self {
        Self {
            rate,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    fn take(&self) -> bool {
        let mut s = self.state.lock().expect("bucket lock");
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() * self.rate;
        s.0 = (s.0 + refill).min(self.burst);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug)]
struct Token {
    name: String,
    hash: [u8; 32],
    scopes: Vec<Scope>,
    bucket: Option<Bucket>,
}

/// The tokens a node accepts. Empty means authentication is off (loopback only).
#[derive(Debug, Default)]
pub struct Tokens {
    tokens: Vec<Token>,
}

/// Who made an authorised call: the token's name, or `None` when authentication is off or the
/// service is open. Put in the request's extensions for handlers that want to log it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub Option<String>);

impl Tokens {
    /// From the validated configuration.
    pub fn new(config: &[TokenConfig]) -> Self {
        let tokens = config
            .iter()
            .map(|t| {
                let mut hash = [0u8; 32];
                // Validated as 64 hex digits by `Config::validate`.
                hex::decode_to_slice(&t.sha256, &mut hash).unwrap_or_default();
                Token {
                    name: t.name.clone(),
                    hash,
                    scopes: t.scopes.clone(),
                    bucket: t.rate_per_sec.map(|rate| {
                        let burst = t.burst.map_or(rate.ceil().max(1.0), f64::from);
                        Bucket::new(rate, burst)
                    }),
                }
            })
            .collect();
        Self { tokens }
    }

    /// Whether any token is configured (authentication on).
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Checks a call to `path` carrying `authorization` (the header's value, if any).
    pub fn check(
        &self,
        path: &str,
        authorization: Option<&[u8]>,
    ) -> Result<Caller, (Refusal, Status)> {
        if !self.enabled() {
            return Ok(Caller(None));
        }
        let Some(scope) = scope_for_path(path) else {
            return Ok(Caller(None));
        };
        let unauthenticated = |m: &str| (Refusal::Unauthenticated, Status::unauthenticated(m));
        let Some(value) = authorization else {
            return Err(unauthenticated(
                "missing bearer token (authorization: Bearer <token>)",
            ));
        };
        let presented = match value.split_first_chunk::<7>() {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case(b"bearer ") => rest.trim_ascii(),
            _ => return Err(unauthenticated("authorization must be `Bearer <token>`")),
        };
        let digest: [u8; 32] = Sha256::digest(presented).into();
        // Compare with every token, without stopping at the first match.
        let mut found = None;
        for t in &self.tokens {
            if bool::from(t.hash.ct_eq(&digest)) {
                found = Some(t);
            }
        }
        let Some(token) = found else {
            return Err(unauthenticated("invalid bearer token"));
        };
        if !token.scopes.contains(&scope) {
            return Err((
                Refusal::PermissionDenied,
                Status::permission_denied(format!(
                    "token '{}' lacks the '{}' scope this service needs",
                    token.name,
                    scope.name()
                )),
            ));
        }
        if let Some(bucket) = &token.bucket {
            if !bucket.take() {
                return Err((
                    Refusal::RateLimited,
                    Status::resource_exhausted(format!(
                        "token '{}' is over its rate limit; retry later",
                        token.name
                    )),
                ));
            }
        }
        Ok(Caller(Some(token.name.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(&[
            TokenConfig {
                name: "analysts".into(),
                sha256: hash_token("s3cret"),
                scopes: vec![Scope::Submit, Scope::Audit],
                rate_per_sec: None,
                burst: None,
            },
            TokenConfig {
                name: "slow".into(),
                sha256: hash_token("slow"),
                scopes: vec![Scope::Match],
                rate_per_sec: Some(0.001),
                burst: Some(2),
            },
        ])
    }

    #[test]
    fn scopes_follow_the_path() {
        assert_eq!(
            scope_for_path("/redline.v1.Submission/Submit"),
            Some(Scope::Submit)
        );
        assert_eq!(
            scope_for_path("/redline.v1.Node/Status"),
            Some(Scope::Admin)
        );
        assert_eq!(scope_for_path("/grpc.health.v1.Health/Check"), None);
        assert_eq!(scope_for_path("/something.Else/X"), Some(Scope::Admin));
    }

    #[test]
    fn checks_token_scope_and_rate() {
        let t = tokens();
        let code = |r: Result<Caller, (Refusal, Status)>| r.map_err(|(_, s)| s.code());
        let p = "/redline.v1.Submission/Submit";
        assert_eq!(code(t.check(p, None)), Err(tonic::Code::Unauthenticated));
        assert_eq!(
            code(t.check(p, Some(b"Bearer nope"))),
            Err(tonic::Code::Unauthenticated)
        );
        assert_eq!(
            code(t.check(p, Some(b"Basic s3cret"))),
            Err(tonic::Code::Unauthenticated)
        );
        assert_eq!(
            t.check(p, Some(b"bearer s3cret")).unwrap(),
            Caller(Some("analysts".into()))
        );
        assert_eq!(
            code(t.check("/redline.v1.Matching/Match", Some(b"Bearer s3cret"))),
            Err(tonic::Code::PermissionDenied)
        );
        assert!(t.check("/grpc.health.v1.Health/Check", None).is_ok());
        let m = "/redline.v1.Matching/Match";
        assert!(t.check(m, Some(b"Bearer slow")).is_ok());
        assert!(t.check(m, Some(b"Bearer slow")).is_ok());
        assert_eq!(
            code(t.check(m, Some(b"Bearer slow"))),
            Err(tonic::Code::ResourceExhausted)
        );
        assert!(Tokens::default().check(p, None).is_ok());
    }
}
