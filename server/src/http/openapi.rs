//! The OpenAPI 3.1 document of the HTTP API, served at `/openapi.json` and generated from the
//! handlers' own annotations and the response types' derives (utoipa), so it cannot drift from
//! what the node answers; `schemathesis` checks it against a live node in `.ci/run`.
//!
//! The refusals every operation can meet (a missing token, a rate limit, a node still loading)
//! are added here, once, by [`Refusals`] rather than repeated on each handler: which ones an
//! operation gets follows from what it is (protected or open, with parameters or a body).

use super::error::ErrorBody;
use super::{hma, report, v1, v1_logs, v1_proof, v1_status, v1_submit};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use redline_proto::signal::SignalType;
use std::sync::OnceLock;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// A signal type's name, with the names [`SignalType::ALL`] knows as its `enum`, so the
/// document lists exactly the types the node parses.
#[derive(Debug)]
pub struct SignalTypeName;

impl utoipa::PartialSchema for SignalTypeName {
    fn schema() -> RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("A signal type, as the proto and pytx name it"))
            .enum_values(Some(SignalType::ALL.map(SignalType::name)))
            .into()
    }
}

impl utoipa::ToSchema for SignalTypeName {}

/// The name of the bearer-token security scheme the protected operations name.
pub const BEARER: &str = "bearer";

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Redline node HTTP API",
        description = "Matching against the federated hash lists a Redline node holds, over \
            HTTP/JSON on the node's gRPC address. `/m/` and `/h/` follow Meta's \
            Hasher-Matcher-Actioner 1.1 (an HMA bank is a Redline origin, a bank content id an \
            index in that origin's signed log); `/v1/` is Redline's own shape with provenance \
            (origin, index, labels, legal basis and the checkpoint a match was made under). \
            Protected operations need `Authorization: Bearer <token>` when the node has tokens \
            configured, with the scope of the gRPC service doing the same: `match` for lookups \
            and hashing, `submit` for `/v1/submit` and `/v1/retract`, `audit` for proofs, \
            origins, checkpoints, entries and evidence, `admin` for `/v1/status` and \
            `/v1/origins/resume`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        hma::status,
        hma::status_live,
        hma::index_status,
        hma::lookup_get,
        hma::lookup_post,
        hma::raw_lookup,
        hma::hash_post,
        v1::match_one,
        v1::match_batch,
        v1_proof::proof,
        v1_submit::submit,
        v1_submit::retract,
        v1_logs::origins,
        v1_logs::checkpoints,
        v1_logs::entries,
        v1_logs::evidence,
        v1_logs::growth,
        v1_status::status,
        v1_status::resume,
        report::queue,
        report::approve,
        report::reject,
        report::open_case,
        report::case_status,
        report::withdraw_case,
        openapi_json,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Refusals),
    tags(
        (name = "hma", description = "Hasher-Matcher-Actioner 1.1 compatible"),
        (name = "v1", description = "Redline's own API"),
        (name = "report", description = "The victim's page: report hashes of one's own images, check and withdraw, without a token"),
        (name = "probes", description = "Liveness, readiness and this document"),
    )
)]
pub struct ApiDoc;

/// Adds the bearer scheme and the shared refusals to every operation.
#[derive(Debug)]
pub struct Refusals;

/// One shared refusal: its status, component name and what it means.
const SHARED: &[(&str, &str, &str)] = &[
    (
        "400",
        "BadRequest",
        "A malformed parameter or body (a hash that does not parse, an unknown signal type).",
    ),
    (
        "401",
        "Unauthenticated",
        "No bearer token, or one the node does not know.",
    ),
    (
        "403",
        "PermissionDenied",
        "The token lacks the scope this operation needs.",
    ),
    (
        "413",
        "PayloadTooLarge",
        "The body is larger than the node accepts.",
    ),
    (
        "429",
        "RateLimited",
        "The token's rate, the caller's address's budget (report calls) or a node-wide bound \
         is exceeded; retry after `Retry-After` seconds.",
    ),
    (
        "500",
        "Internal",
        "The node failed to answer (e.g. its store could not be read).",
    ),
    (
        "503",
        "Unavailable",
        "The node is still loading its catalog; retry after `Retry-After` seconds.",
    ),
];

impl Modify for Refusals {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for (_, name, description) in SHARED {
            let body = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build();
            components.responses.insert(
                (*name).to_owned(),
                RefOr::T(
                    ResponseBuilder::new()
                        .description(*description)
                        .content("application/json", body)
                        .build(),
                ),
            );
        }
        for item in doc.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                add_refusals(op);
            }
        }
    }
}

/// The refusals `op` can meet: 401/403/429/500/503 when it needs a token (it reaches the
/// node), 429/500/503 too for the public report calls (bounded per address instead of per
/// token), 400 when it reads parameters or a body, 413 when it reads a body.
fn add_refusals(op: &mut Operation) {
    let protected = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let bounded = protected
        || op
            .tags
            .as_ref()
            .is_some_and(|t| t.iter().any(|t| t == "report"));
    let reads_input = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let has_body = op.request_body.is_some();
    for (status, name, _) in SHARED {
        let applies = match *status {
            "400" => reads_input || has_body,
            "413" => has_body,
            "401" | "403" => protected,
            "429" | "500" | "503" => bounded,
            _ => false,
        };
        if applies {
            op.responses
                .responses
                .entry((*status).to_owned())
                .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
        }
    }
}

/// The document, rendered once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| {
        ApiDoc::openapi()
            .to_pretty_json()
            .unwrap_or_else(|e| format!("{{\"error\": \"openapi: {e}\"}}"))
    })
}

/// `GET /openapi.json`: this API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "probes",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object)),
)]
pub async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> serde_json::Value {
        serde_json::from_str(document()).expect("the document is JSON")
    }

    #[test]
    fn every_served_path_is_documented_with_its_scope() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().expect("paths");
        for route in super::super::ROUTES {
            let item = paths
                .get(route.path)
                .unwrap_or_else(|| panic!("{} is not documented", route.path));
            for (method, op) in item.as_object().unwrap() {
                let secured = op
                    .get("security")
                    .and_then(|s| s.as_array())
                    .is_some_and(|s| !s.is_empty());
                assert_eq!(
                    secured,
                    !route.scopes.is_empty(),
                    "{method} {}: security must follow the route's scope",
                    route.path
                );
                let responses = op["responses"].as_object().unwrap();
                assert!(responses.contains_key("200"), "{method} {}", route.path);
                if secured {
                    for code in ["401", "403", "429", "503"] {
                        assert!(
                            responses.contains_key(code),
                            "{method} {} lacks {code}",
                            route.path
                        );
                    }
                }
            }
        }
        assert_eq!(
            paths.len(),
            super::super::ROUTES.len(),
            "a documented path the node does not serve"
        );
        // Tools key operations by id (schemathesis silently tested one of two `status`es).
        let mut ids: Vec<&str> = paths
            .values()
            .flat_map(|item| item.as_object().unwrap().values())
            .map(|op| op["operationId"].as_str().expect("an operation id"))
            .collect();
        let all = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all, "operation ids must be unique: {ids:?}");
    }

    #[test]
    fn bodies_and_refusals_are_described() {
        let doc = doc();
        let lookup = &doc["paths"]["/v1/match"]["post"];
        assert!(lookup["requestBody"]["content"]["application/json"].is_object());
        assert_eq!(
            lookup["responses"]["413"]["$ref"],
            "#/components/responses/PayloadTooLarge"
        );
        let batch = &doc["paths"]["/v1/match/batch"]["post"]["responses"]["200"];
        assert!(batch["content"]["application/x-ndjson"].is_object());
        assert_eq!(
            doc["components"]["securitySchemes"][BEARER]["scheme"],
            "bearer"
        );
        assert!(doc["components"]["schemas"]["Lookup"]["properties"]["matches"].is_object());
        let signal_type = &doc["paths"]["/m/lookup"]["get"]["parameters"][0];
        assert_eq!(signal_type["name"], "signal_type");
        assert_eq!(
            signal_type["schema"]["$ref"],
            "#/components/schemas/SignalTypeName"
        );
        let names = doc["components"]["schemas"]["SignalTypeName"]["enum"]
            .as_array()
            .expect("the signal types are listed");
        assert_eq!(names.len(), SignalType::ALL.len());
        assert!(names.contains(&serde_json::json!("video_md5")));
        // The public report calls: no token to refuse, but an address budget and the node.
        let report = doc["paths"]["/report/api/cases"]["post"]["responses"]
            .as_object()
            .unwrap();
        for code in ["400", "404", "413", "429", "500", "503"] {
            assert!(report.contains_key(code), "/report/api/cases lacks {code}");
        }
        assert!(!report.contains_key("401") && !report.contains_key("403"));
        let error = &doc["components"]["schemas"]["ErrorBody"];
        assert_eq!(error["required"], serde_json::json!(["message", "code"]));
    }
}
