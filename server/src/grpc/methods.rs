//! The gRPC methods this node serves, read once from the services' own descriptors (Redline's,
//! health's and both reflection versions'), so the table cannot drift from the `.proto` files:
//! a new RPC is known here the moment it is generated.
//!
//! The guard labels metrics with [`label`]: a real method's `package.Service/Method`, and
//! `other` for every other path. A client chooses the path of each call, and each distinct
//! label value is a series the registry keeps forever, so only this fixed set (21 methods
//! today) may ever appear; before, `/redline.v1.Matching/x1`, `/x2`, … each made one.

use prost::Message;
use std::collections::HashMap;
use std::sync::LazyLock;

/// The label of every path that is not a served method.
pub const OTHER: &str = "other";

/// One served method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method {
    /// `package.Service/Method`, the metric label.
    pub label: String,
    /// Whether the client sends a stream of messages.
    pub client_streaming: bool,
    /// Whether the server answers with a stream of messages.
    pub server_streaming: bool,
}

impl Method {
    /// Whether either side streams (the call can outlive one request and one answer).
    pub fn streaming(&self) -> bool {
        self.client_streaming || self.server_streaming
    }
}

// The parts of `google.protobuf.FileDescriptorSet` read here (field numbers from
// descriptor.proto; every other field is skipped), so no descriptor crate is needed.

#[derive(Clone, PartialEq, Message)]
struct FileDescriptorSet {
    #[prost(message, repeated, tag = "1")]
    file: Vec<FileDescriptorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct FileDescriptorProto {
    #[prost(string, optional, tag = "2")]
    package: Option<String>,
    #[prost(message, repeated, tag = "6")]
    service: Vec<ServiceDescriptorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct ServiceDescriptorProto {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(message, repeated, tag = "2")]
    method: Vec<MethodDescriptorProto>,
}

#[derive(Clone, PartialEq, Message)]
struct MethodDescriptorProto {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(bool, optional, tag = "5")]
    client_streaming: Option<bool>,
    #[prost(bool, optional, tag = "6")]
    server_streaming: Option<bool>,
}

/// The encoded descriptor sets of every service the router serves.
fn descriptor_sets() -> [&'static [u8]; 4] {
    [
        redline_proto::pb::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ]
}

/// Every served method by its path (`/package.Service/Method`).
fn table() -> HashMap<String, Method> {
    let mut methods = HashMap::new();
    for bytes in descriptor_sets() {
        let set = FileDescriptorSet::decode(bytes).expect("descriptor sets compiled into the node");
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for service in file.service {
                let service = match service.name {
                    Some(name) if package.is_empty() => (name, service.method),
                    Some(name) => (format!("{package}.{name}"), service.method),
                    None => continue,
                };
                for m in service.1 {
                    let Some(name) = m.name else { continue };
                    let label = format!("{}/{name}", service.0);
                    methods.insert(
                        format!("/{label}"),
                        Method {
                            label,
                            client_streaming: m.client_streaming.unwrap_or(false),
                            server_streaming: m.server_streaming.unwrap_or(false),
                        },
                    );
                }
            }
        }
    }
    methods
}

static METHODS: LazyLock<HashMap<String, Method>> = LazyLock::new(table);

/// The served method at `path`, if it is one.
pub fn lookup(path: &str) -> Option<&'static Method> {
    METHODS.get(path)
}

/// The metric label of a call to `path`: its method, or [`OTHER`].
pub fn label(path: &str) -> &'static str {
    lookup(path).map_or(OTHER, |m| m.label.as_str())
}

/// Every label value [`label`] can return.
pub fn labels() -> impl Iterator<Item = &'static str> {
    METHODS
        .values()
        .map(|m| m.label.as_str())
        .chain(std::iter::once(OTHER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_real_method_has_its_label() {
        for (path, want) in [
            ("/redline.v1.Matching/Match", "redline.v1.Matching/Match"),
            (
                "/redline.v1.Matching/MatchStream",
                "redline.v1.Matching/MatchStream",
            ),
            (
                "/redline.v1.Submission/Submit",
                "redline.v1.Submission/Submit",
            ),
            (
                "/redline.v1.Submission/Retract",
                "redline.v1.Submission/Retract",
            ),
            (
                "/redline.v1.Audit/ListEvidence",
                "redline.v1.Audit/ListEvidence",
            ),
            (
                "/redline.v1.Federation/Gossip",
                "redline.v1.Federation/Gossip",
            ),
            ("/redline.v1.Node/Status", "redline.v1.Node/Status"),
            (
                "/grpc.health.v1.Health/Check",
                "grpc.health.v1.Health/Check",
            ),
            (
                "/grpc.health.v1.Health/Watch",
                "grpc.health.v1.Health/Watch",
            ),
            (
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            ),
            (
                "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            ),
        ] {
            assert_eq!(label(path), want, "{path}");
        }
        let stream = lookup("/redline.v1.Matching/MatchStream").unwrap();
        assert!(stream.client_streaming && stream.server_streaming);
        let watch = lookup("/grpc.health.v1.Health/Watch").unwrap();
        assert!(!watch.client_streaming && watch.server_streaming);
        assert!(!lookup("/redline.v1.Matching/Match").unwrap().streaming());
    }

    #[test]
    fn anything_else_is_other() {
        for path in [
            "/redline.v1.Matching/x1",
            "/redline.v1.Matching/match",
            "/redline.v1.Matching/Match/",
            "/redline.v1.Matching/Match?x=1",
            "redline.v1.Matching/Match",
            "/redline.v1.Node/Status2",
            "/grpc.health.v1.Health/List2",
            "/unknown.Service/Match",
            "/",
            "",
            &format!("/redline.v1.Matching/{}", "x".repeat(10_000)),
        ] {
            assert_eq!(label(path), OTHER, "{path:?}");
        }
    }

    #[test]
    fn the_label_set_is_small_and_fixed() {
        let all: std::collections::BTreeSet<&str> = labels().collect();
        // 16 Redline RPCs, health's Check and Watch, one per reflection version, `other`;
        // health may grow `List` in a later tonic-health.
        assert!((20..=24).contains(&all.len()), "{all:?}");
        assert!(all.iter().all(|l| l.len() < 96));
    }
}
