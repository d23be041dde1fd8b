//! The published AMQP contract: JSON Schemas (draft 2020-12) of the work
//! envelope and of the task events, generated from the Rust types.
//!
//! The generated schemas are committed under `contracts/` (so another team
//! can read them without building tenderflow) and served over HTTP from
//! those files. A test regenerates them and fails when the committed files
//! differ from the types; `TENDERFLOW_WRITE_CONTRACTS=1 cargo test --lib
//! contract` writes them anew.

use schemars::generate::SchemaSettings;

use crate::envelope::{ENVELOPE_SCHEMA, Envelope};
use crate::events::{EVENT_SCHEMA, Event};

/// One published schema: its file name (under `contracts/`, and under
/// `/v1/schemas/` without `.schema`), and the committed text.
#[derive(Debug, Clone, Copy)]
pub struct Contract {
    /// Name as served: `envelope.v1.json`.
    pub name: &'static str,
    /// The committed schema.
    pub text: &'static str,
    generate: fn() -> serde_json::Value,
}

impl Contract {
    /// The schema as the current Rust types give it.
    pub fn generated(&self) -> serde_json::Value {
        (self.generate)()
    }

    /// The committed file's path inside the repository.
    pub fn file(&self) -> String {
        format!("contracts/{}", self.name.replace(".json", ".schema.json"))
    }
}

// The names carry the layout versions: a new version is a new file beside
// the old one, which a producer of the old one can still read.
const _: () = assert!(ENVELOPE_SCHEMA == 1 && EVENT_SCHEMA == 1);

/// Every published schema.
pub const CONTRACTS: [Contract; 2] = [
    Contract {
        name: "envelope.v1.json",
        text: include_str!("../contracts/envelope.v1.schema.json"),
        generate: schema_of::<Envelope>,
    },
    Contract {
        name: "event.v1.json",
        text: include_str!("../contracts/event.v1.schema.json"),
        generate: schema_of::<Event>,
    },
];

/// The published schema named `name` (`envelope.v1.json`).
pub fn find(name: &str) -> Option<&'static Contract> {
    CONTRACTS.iter().find(|c| c.name == name)
}

/// The draft 2020-12 schema of `T`, as published.
fn schema_of<T: schemars::JsonSchema>() -> serde_json::Value {
    let schema = SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<T>();
    serde_json::to_value(schema).expect("a schema is JSON")
}

/// A schema as written to its file: pretty, with a final newline.
pub fn render(schema: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(schema).expect("a schema is JSON");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Stage;

    #[test]
    fn the_committed_schemas_are_those_of_the_rust_types() {
        let write = std::env::var_os("TENDERFLOW_WRITE_CONTRACTS").is_some();
        for contract in CONTRACTS {
            let generated = render(&contract.generated());
            if write {
                let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(contract.file());
                std::fs::write(&path, &generated).unwrap();
                continue;
            }
            assert!(
                generated == contract.text,
                "{} differs from the Rust types it describes; if the change is meant, \
                 regenerate it with `TENDERFLOW_WRITE_CONTRACTS=1 cargo test --lib contract` \
                 (and bump the schema version if old messages no longer fit)",
                contract.file()
            );
        }
    }

    #[test]
    fn the_envelope_schema_requires_only_what_an_outside_producer_must_write() {
        let schema = find("envelope.v1.json").unwrap().generated();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(
            schema["required"],
            serde_json::json!(["schema", "task_id", "documents"])
        );
        assert_eq!(schema["properties"]["schema"]["const"], 1);
        assert_eq!(schema["additionalProperties"], false);
        // The submission time defaults to the reading time, which is no
        // constant: the schema shows no default rather than a stale one.
        assert!(
            schema["properties"]["submitted_at"]
                .get("default")
                .is_none()
        );
        assert_eq!(
            schema["properties"]["stage"]["default"],
            Stage::Ingest.as_str()
        );
        assert_eq!(schema["properties"]["attempt"]["default"], 1);
    }

    #[test]
    fn the_readmes_example_message_is_an_envelope_a_new_task_starts_with() {
        let readme = include_str!("../README.md");
        let section = readme
            .split("## Publishing from another language")
            .nth(1)
            .expect("the README has the section");
        let example = section
            .split("```json\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("the section has an example message");
        let envelope = Envelope::decode(example.as_bytes(), Stage::Ingest).unwrap();
        assert_eq!(envelope.task_id.get_version_num(), 4);
        assert_eq!(
            envelope.submitted_at.to_rfc3339(),
            "2026-03-02T01:30:00+00:00"
        );
        assert_eq!(envelope.options.filter_model, "rules");
    }

    #[test]
    fn schemas_are_found_by_their_served_name() {
        assert!(find("event.v1.json").is_some());
        assert!(find("envelope.v2.json").is_none());
        assert_eq!(
            find("envelope.v1.json").unwrap().file(),
            "contracts/envelope.v1.schema.json"
        );
    }
}
