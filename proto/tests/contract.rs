//! `redline.v1` as a public contract, checked on the descriptor set protoc compiled from
//! `proto/redline/v1/*.proto` (with source info, so comments are visible):
//!
//! - **lint** (what `buf lint`'s DEFAULT and COMMENTS rules would flag, checkable here
//!   without buf): package `redline.v1` in a matching directory, `go_package`,
//!   `java_package` and `java_multiple_files` on every file, PascalCase messages, enums,
//!   services and methods, lower_snake_case fields, UPPER_SNAKE_CASE enum values, and a
//!   leading comment on every message, field, enum, enum value, service and method;
//! - **breaking changes** against `proto/contract/redline.v1.baseline.txt`, the API of the
//!   previous release: no message, field, enum value, service or method removed, renumbered,
//!   retyped or renamed, no field's cardinality changed, no method's request, response or
//!   streaming changed. Additions are fine. After a release, regenerate the baseline with
//!   `REDLINE_WRITE_PROTO_BASELINE=1 cargo test -p redline-proto --test contract`.

use prost::Message;
use prost_types::{
    field_descriptor_proto::{Label, Type},
    DescriptorProto, EnumDescriptorProto, FileDescriptorProto, FileDescriptorSet,
};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn descriptors() -> FileDescriptorSet {
    FileDescriptorSet::decode(redline_proto::pb::FILE_DESCRIPTOR_SET).expect("descriptor set")
}

/// Leading comments of a file, by source path (the descriptor path of each element).
fn comments(file: &FileDescriptorProto) -> BTreeMap<Vec<i32>, String> {
    file.source_code_info
        .as_ref()
        .expect("protoc was run with source info")
        .location
        .iter()
        .map(|l| (l.path.clone(), l.leading_comments().trim().to_owned()))
        .collect()
}

fn is_pascal(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase()) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_lower_snake(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_upper_snake(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_uppercase())
        && s.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

// Field numbers of descriptor.proto, which source paths are made of.
const FILE_MESSAGE: i32 = 4;
const FILE_ENUM: i32 = 5;
const FILE_SERVICE: i32 = 6;
const MESSAGE_FIELD: i32 = 2;
const MESSAGE_NESTED: i32 = 3;
const MESSAGE_ENUM: i32 = 4;
const ENUM_VALUE: i32 = 2;
const SERVICE_METHOD: i32 = 2;

/// What the lint found wrong, one line each.
fn lint(set: &FileDescriptorSet) -> Vec<String> {
    let mut problems = Vec::new();
    for file in &set.file {
        let name = file.name();
        let c = comments(file);
        let mut uncommented = Vec::new();
        let mut need_comment = |path: Vec<i32>, what: String| {
            if c.get(&path).is_none_or(|s| s.is_empty()) {
                uncommented.push(format!("{name}: {what} has no comment"));
            }
        };
        if file.package() != "redline.v1" || !name.starts_with("redline/v1/") {
            problems.push(format!(
                "{name}: package {:?} outside redline/v1/",
                file.package()
            ));
        }
        let o = file.options.clone().unwrap_or_default();
        if o.go_package().is_empty() {
            problems.push(format!("{name}: no go_package option"));
        }
        if o.java_package().is_empty() || !o.java_multiple_files() {
            problems.push(format!(
                "{name}: needs java_package and java_multiple_files = true"
            ));
        }
        fn messages(
            m: &DescriptorProto,
            path: Vec<i32>,
            out: &mut Vec<(Vec<i32>, String, DescriptorProto)>,
        ) {
            out.push((path.clone(), m.name().to_owned(), m.clone()));
            for (i, n) in m.nested_type.iter().enumerate() {
                if n.options.as_ref().is_some_and(|o| o.map_entry()) {
                    continue; // map<K, V> entries are generated
                }
                let mut p = path.clone();
                p.extend([MESSAGE_NESTED, i as i32]);
                messages(n, p, out);
            }
        }
        let mut all = Vec::new();
        for (i, m) in file.message_type.iter().enumerate() {
            messages(m, vec![FILE_MESSAGE, i as i32], &mut all);
        }
        let mut enums: Vec<(Vec<i32>, EnumDescriptorProto)> = file
            .enum_type
            .iter()
            .enumerate()
            .map(|(i, e)| (vec![FILE_ENUM, i as i32], e.clone()))
            .collect();
        for (path, mname, m) in &all {
            if !is_pascal(mname) {
                problems.push(format!("{name}: message {mname} is not PascalCase"));
            }
            need_comment(path.clone(), format!("message {mname}"));
            for (i, f) in m.field.iter().enumerate() {
                if !is_lower_snake(f.name()) {
                    problems.push(format!(
                        "{name}: field {mname}.{} is not lower_snake_case",
                        f.name()
                    ));
                }
                let mut p = path.clone();
                p.extend([MESSAGE_FIELD, i as i32]);
                need_comment(p, format!("field {mname}.{}", f.name()));
            }
            for (i, e) in m.enum_type.iter().enumerate() {
                let mut p = path.clone();
                p.extend([MESSAGE_ENUM, i as i32]);
                enums.push((p, e.clone()));
            }
        }
        for (path, e) in &enums {
            if !is_pascal(e.name()) {
                problems.push(format!("{name}: enum {} is not PascalCase", e.name()));
            }
            need_comment(path.clone(), format!("enum {}", e.name()));
            for (i, v) in e.value.iter().enumerate() {
                if !is_upper_snake(v.name()) {
                    problems.push(format!(
                        "{name}: enum value {} is not UPPER_SNAKE_CASE",
                        v.name()
                    ));
                }
                let mut p = path.clone();
                p.extend([ENUM_VALUE, i as i32]);
                need_comment(p, format!("enum value {}.{}", e.name(), v.name()));
            }
        }
        for (i, s) in file.service.iter().enumerate() {
            if !is_pascal(s.name()) {
                problems.push(format!("{name}: service {} is not PascalCase", s.name()));
            }
            need_comment(
                vec![FILE_SERVICE, i as i32],
                format!("service {}", s.name()),
            );
            for (j, m) in s.method.iter().enumerate() {
                if !is_pascal(m.name()) {
                    problems.push(format!(
                        "{name}: method {}.{} is not PascalCase",
                        s.name(),
                        m.name()
                    ));
                }
                need_comment(
                    vec![FILE_SERVICE, i as i32, SERVICE_METHOD, j as i32],
                    format!("method {}.{}", s.name(), m.name()),
                );
            }
        }
        problems.append(&mut uncommented);
    }
    problems
}

/// The wire contract, one line per element, sorted: what a breaking change would alter.
/// `field redline.v1.Match 9 tlog_proof optional bytes`, `enum_value redline.v1.X 1 A`,
/// `method redline.v1.Audit GetCheckpoint redline.v1.GetCheckpointRequest -> ...`.
fn contract(set: &FileDescriptorSet) -> Vec<String> {
    fn message(prefix: &str, m: &DescriptorProto, out: &mut Vec<String>) {
        let full = format!("{prefix}.{}", m.name());
        out.push(format!("message {full}"));
        for f in &m.field {
            let label = match f.label() {
                Label::Repeated => "repeated",
                Label::Required => "required",
                Label::Optional if f.proto3_optional() => "explicit",
                Label::Optional => "singular",
            };
            let ty = match f.r#type() {
                Type::Message | Type::Enum | Type::Group => f.type_name().to_owned(),
                t => format!("{t:?}").to_lowercase(),
            };
            let oneof = f
                .oneof_index
                .filter(|_| !f.proto3_optional())
                .map(|i| format!(" oneof {}", m.oneof_decl[i as usize].name()))
                .unwrap_or_default();
            out.push(format!(
                "field {full} {} {} {label} {ty}{oneof}",
                f.number(),
                f.name()
            ));
        }
        for e in &m.enum_type {
            enumeration(&full, e, out);
        }
        for n in &m.nested_type {
            message(&full, n, out);
        }
    }
    fn enumeration(prefix: &str, e: &EnumDescriptorProto, out: &mut Vec<String>) {
        let full = format!("{prefix}.{}", e.name());
        out.push(format!("enum {full}"));
        for v in &e.value {
            out.push(format!("enum_value {full} {} {}", v.number(), v.name()));
        }
    }
    let mut out = Vec::new();
    for file in &set.file {
        let prefix = file.package();
        for m in &file.message_type {
            message(prefix, m, &mut out);
        }
        for e in &file.enum_type {
            enumeration(prefix, e, &mut out);
        }
        for s in &file.service {
            let full = format!("{prefix}.{}", s.name());
            out.push(format!("service {full}"));
            for m in &s.method {
                let stream = |b: bool| if b { "stream " } else { "" };
                out.push(format!(
                    "method {full} {} {}{} -> {}{}",
                    m.name(),
                    stream(m.client_streaming()),
                    m.input_type(),
                    stream(m.server_streaming()),
                    m.output_type()
                ));
            }
        }
    }
    out.sort();
    out
}

/// Baseline lines the current contract no longer has: each is a breaking change. (A renamed
/// or retyped field shows as its old line missing.)
fn breaking(baseline: &[String], current: &[String]) -> Vec<String> {
    let now: std::collections::BTreeSet<&String> = current.iter().collect();
    baseline
        .iter()
        .filter(|l| !now.contains(l))
        .cloned()
        .collect()
}

fn baseline_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("contract/redline.v1.baseline.txt")
}

#[test]
fn the_api_passes_the_lint() {
    let problems = lint(&descriptors());
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_api_has_no_breaking_change_since_the_baseline() {
    let current = contract(&descriptors());
    let path = baseline_path();
    if std::env::var_os("REDLINE_WRITE_PROTO_BASELINE").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut text = String::from(
            "# redline.v1 as of the previous release: one line per message, field, enum value,\n\
             # service and method (proto/tests/contract.rs). Removing or changing a line breaks\n\
             # clients; regenerate only when releasing.\n",
        );
        for l in &current {
            text.push_str(l);
            text.push('\n');
        }
        std::fs::write(&path, text).unwrap();
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (see this file's doc comment)", path.display()));
    let baseline: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert!(
        baseline.len() > 100,
        "a baseline of {} lines",
        baseline.len()
    );
    let broken = breaking(&baseline, &current);
    assert!(
        broken.is_empty(),
        "breaking changes against {}:\n{}",
        path.display(),
        broken.join("\n")
    );
}

/// The checks themselves catch what they are for, on altered copies of the real descriptors.
#[test]
fn the_checks_catch_a_renumbered_field_a_retyped_one_and_a_missing_comment() {
    let set = descriptors();
    let before = contract(&set);
    let mut altered = set.clone();
    let file = altered
        .file
        .iter_mut()
        .find(|f| f.name() == "redline/v1/matching.proto")
        .unwrap();
    let m = file
        .message_type
        .iter_mut()
        .find(|m| m.name() == "Match")
        .unwrap();
    let origin = m.field.iter_mut().find(|f| f.name() == "origin").unwrap();
    origin.number = Some(origin.number() + 100);
    let index = m.field.iter_mut().find(|f| f.name() == "index").unwrap();
    index.set_type(Type::Uint32);
    let broken = breaking(&before, &contract(&altered));
    assert_eq!(broken.len(), 2, "{broken:?}");
    assert!(broken
        .iter()
        .any(|l| l.contains("Match") && l.contains(" origin ")));
    assert!(broken
        .iter()
        .any(|l| l.contains("Match") && l.contains(" index ")));
    // Adding a field is not breaking.
    let mut added = set.clone();
    added.file[0].message_type[0]
        .field
        .push(prost_types::FieldDescriptorProto {
            name: Some("new_field".into()),
            number: Some(999),
            ..Default::default()
        });
    assert!(breaking(&before, &contract(&added)).is_empty());

    let mut uncommented = set.clone();
    for f in &mut uncommented.file {
        if let Some(info) = &mut f.source_code_info {
            for l in &mut info.location {
                if l.path == [FILE_MESSAGE, 0] {
                    l.leading_comments = None;
                }
            }
        }
        if let Some(o) = &mut f.options {
            o.go_package = None;
        }
    }
    let problems = lint(&uncommented);
    assert!(
        problems.iter().any(|p| p.contains("has no comment")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("no go_package")),
        "{problems:?}"
    );
}
