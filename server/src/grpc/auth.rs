//! Bearer tokens with scopes. Tokens are configured as SHA-256 hashes only; a presented token
//! is hashed and compared with every configured hash in constant time. Which scope a call
//! needs follows from its gRPC path alone ([`scope_for_path`]), so the check sits in one place
//! (the [`guard`](super::guard) layer) in front of every service.

use crate::config::{Scope, TokenConfig};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use subtle::ConstantTimeEq;
use thiserror::Error;
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

/// A token bucket of work units: `rate` per second on average, up to `burst` saved up.
///
/// A charge is admitted while the bucket holds at least one unit, and then takes its whole
/// cost, which may leave the bucket in debt: a Match of 1,024 signals under a token of 10
/// units a second is answered, and the token's next call waits until the debt is paid back
/// (~100 s). Requiring the whole cost up front instead would refuse every request larger
/// than `burst` forever. Either way the work a token gets done over any long stretch is at
/// most `rate` units a second, plus `burst` and one request's cost.
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

    /// Charges `units` if admitted (at least one unit in the bucket), or with `force` always.
    fn charge(&self, units: u64, force: bool) -> bool {
        let mut s = self.state.lock().expect("bucket lock");
        let now = Instant::now();
        let refill = now.duration_since(s.1).as_secs_f64() * self.rate;
        s.0 = (s.0 + refill).min(self.burst);
        s.1 = now;
        if force || s.0 >= 1.0 {
            s.0 -= units as f64;
            true
        } else {
            false
        }
    }

    fn take(&self) -> bool {
        self.charge(1, false)
    }
}

/// Work units of one image in a Match or Submit: decoding, resizing and hashing it with every
/// configured signal type costs as much CPU as many searches do, so a token's rate bounds
/// image work at `rate / 16` images a second.
pub const IMAGE_UNITS: u64 = 16;

/// Further units of an image matched with `dihedral`: 7 more PDQ searches.
pub const DIHEDRAL_UNITS: u64 = 7;

/// The work units of one Match or Submit message: one per signal, [`IMAGE_UNITS`] for an
/// image (plus [`DIHEDRAL_UNITS`] with `dihedral`), at least one.
pub fn units(signals: usize, image: bool, dihedral: bool) -> u64 {
    let image = match (image, dihedral) {
        (false, _) => 0,
        (true, false) => IMAGE_UNITS,
        (true, true) => IMAGE_UNITS + DIHEDRAL_UNITS,
    };
    (signals as u64).saturating_add(image).max(1)
}

/// A token over its rate: the request's work was not done.
#[derive(Debug, Clone, PartialEq, Error)]
#[error(
    "token '{token}' is over its rate limit ({rate} units/s, burst {burst}): this request needs \
     {units} units (a signal is 1, an image {IMAGE_UNITS}); retry later"
)]
pub struct OverRate {
    /// The token's name.
    pub token: String,
    /// Its configured rate.
    pub rate: f64,
    /// Its burst.
    pub burst: f64,
    /// What the refused request would have cost.
    pub units: u64,
}

/// What a call may spend of its token's rate, handed to the handlers whose requests carry a
/// variable amount of work (Match, MatchStream, Submit) in the request's extensions.
///
/// Every call pays one unit when the guard admits it; a handler then charges each request
/// message its [`units`], less the unit already paid for the first one. So a one-signal Match
/// costs one unit as it always did, a Match of 1,024 signals 1,024, and a MatchStream pays for
/// every query it carries instead of one call's worth for all of them. Without a budget
/// (authentication off, or a token without `rate_per_sec`) nothing is charged.
#[derive(Debug, Clone, Default)]
pub struct Budget(Option<Arc<Metered>>);

#[derive(Debug)]
struct Metered {
    token: String,
    bucket: Arc<Bucket>,
    /// Whether the unit paid at admission is still unused.
    prepaid: AtomicBool,
}

impl Budget {
    /// No limit.
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// Charges one request message of `units`; refused when the token's bucket is empty.
    pub fn charge(&self, units: u64) -> Result<(), OverRate> {
        let Some(m) = &self.0 else { return Ok(()) };
        // The first message was admitted with the call: it pays the rest of its cost even if
        // that takes the bucket into debt.
        if m.prepaid.swap(false, Ordering::Relaxed) {
            m.bucket.charge(units.saturating_sub(1), true);
            return Ok(());
        }
        if m.bucket.charge(units, false) {
            Ok(())
        } else {
            Err(OverRate {
                token: m.token.clone(),
                rate: m.bucket.rate,
                burst: m.bucket.burst,
                units,
            })
        }
    }

    /// Charges `units` of work already done whose amount was only known after the request was
    /// admitted (a Match's tlog-proofs, one per hit): always taken, possibly into debt, which
    /// the token's next calls then wait out like any other.
    pub fn charge_done(&self, units: u64) {
        if let Some(m) = &self.0 {
            m.bucket.charge(units, true);
        }
    }
}

#[derive(Debug)]
struct Token {
    name: String,
    hash: [u8; 32],
    scopes: Vec<Scope>,
    bucket: Option<Arc<Bucket>>,
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
                        Arc::new(Bucket::new(rate, burst))
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
        self.admit(path, authorization).map(|(caller, _)| caller)
    }

    /// [`check`](Self::check), also returning what the call may spend of the token's rate
    /// (one unit of it already charged for the call itself).
    pub fn admit(
        &self,
        path: &str,
        authorization: Option<&[u8]>,
    ) -> Result<(Caller, Budget), (Refusal, Status)> {
        match scope_for_path(path) {
            Some(scope) => self.admit_any(&[scope], authorization),
            None => self.admit_any(&[], authorization),
        }
    }

    /// [`admit`](Self::admit) for a call that any one of `scopes` admits (none: open to
    /// anyone). The HTTP API ([`crate::http`]) names its routes' scopes itself and shares these
    /// tokens and their rate buckets with gRPC, so a token's rate covers both.
    pub fn admit_any(
        &self,
        scopes: &[Scope],
        authorization: Option<&[u8]>,
    ) -> Result<(Caller, Budget), (Refusal, Status)> {
        if !self.enabled() || scopes.is_empty() {
            return Ok((Caller(None), Budget::unlimited()));
        }
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
        if !scopes.iter().any(|s| token.scopes.contains(s)) {
            let needed: Vec<String> = scopes.iter().map(|s| format!("'{}'", s.name())).collect();
            return Err((
                Refusal::PermissionDenied,
                Status::permission_denied(format!(
                    "token '{}' lacks the {} scope this service needs",
                    token.name,
                    needed.join(" or ")
                )),
            ));
        }
        if let Some(bucket) = &token.bucket {
            if !bucket.take() {
                return Err((
                    Refusal::RateLimited,
                    <Status as tonic_types::StatusExt>::with_error_details(
                        tonic::Code::ResourceExhausted,
                        format!("token '{}' is over its rate limit; retry later", token.name),
                        {
                            let mut d = tonic_types::ErrorDetails::with_retry_info(Some(
                                super::error::retry_delay(1, bucket.rate),
                            ));
                            d.set_error_info(
                                "RATE_LIMITED",
                                super::error::DOMAIN,
                                std::collections::HashMap::new(),
                            );
                            d
                        },
                    ),
                ));
            }
        }
        let budget = Budget(token.bucket.as_ref().map(|bucket| {
            Arc::new(Metered {
                token: token.name.clone(),
                bucket: bucket.clone(),
                prepaid: AtomicBool::new(true),
            })
        }));
        Ok((Caller(Some(token.name.clone())), budget))
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

    #[test]
    fn budgets_charge_work_not_calls() {
        let t = Tokens::new(&[TokenConfig {
            name: "platform".into(),
            sha256: hash_token("p"),
            scopes: vec![Scope::Match],
            rate_per_sec: Some(0.001),
            burst: Some(10),
        }]);
        let m = "/redline.v1.Matching/MatchStream";
        let admit = || t.admit(m, Some(b"Bearer p")).map(|(_, b)| b);
        // A stream: the call paid 1, its first query is that unit, 9 more fit in the burst.
        let stream = admit().unwrap();
        for _ in 0..10 {
            stream.charge(1).unwrap();
        }
        let refused = stream.charge(1).unwrap_err();
        assert_eq!((refused.token.as_str(), refused.units), ("platform", 1));
        assert!(admit().is_err(), "the bucket is empty for new calls too");

        // A large request is admitted with one unit left and leaves the bucket in debt.
        let t = Tokens::new(&[TokenConfig {
            burst: Some(2),
            ..t_config()
        }]);
        let (_, one) = t.admit(m, Some(b"Bearer p")).unwrap();
        one.charge(units(1024, true, true)).unwrap();
        assert!(t.admit(m, Some(b"Bearer p")).is_err());

        // Without a rate, nothing is charged.
        let free = Budget::unlimited();
        for _ in 0..100 {
            free.charge(1024).unwrap();
        }
    }

    fn t_config() -> TokenConfig {
        TokenConfig {
            name: "platform".into(),
            sha256: hash_token("p"),
            scopes: vec![Scope::Match],
            rate_per_sec: Some(0.001),
            burst: None,
        }
    }

    #[test]
    fn units_of_a_request() {
        assert_eq!(units(0, false, false), 1);
        assert_eq!(units(1, false, true), 1);
        assert_eq!(units(1024, false, false), 1024);
        assert_eq!(units(0, true, false), IMAGE_UNITS);
        assert_eq!(units(2, true, true), 2 + IMAGE_UNITS + DIHEDRAL_UNITS);
    }
}
