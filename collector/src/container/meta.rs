//! Parser for Docker's per-container `config.v2.json`; pure, no I/O.
//!
//! Only the few fields logward stamps on events are read; everything else Docker writes
//! there (state, network settings, mounts, ...) is ignored.

use std::collections::BTreeMap;

use logward_proto::Container;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What logward knows about a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerMeta {
    /// Full 64-hex-digit container id.
    pub id: String,
    /// Container name without Docker's leading `/`.
    pub name: String,
    /// Image reference the container was started from (`Config.Image`, e.g. `nginx:1.25`).
    pub image: String,
    /// Content id of that image (`Image`, `sha256:...`).
    pub image_id: String,
    /// Container labels (`Config.Labels`; Docker writes `null` when there are none).
    pub labels: BTreeMap<String, String>,
    /// Creation time in nanoseconds since the Unix epoch, when Docker recorded a parsable one.
    pub created_nanos: Option<i64>,
    /// The user the container runs as (`Config.User`; empty means root).
    pub user: String,
    /// The AppArmor profile Docker applied (`AppArmorProfile`; empty without AppArmor).
    pub apparmor_profile: String,
}

impl ContainerMeta {
    /// Metadata for a container whose `config.v2.json` is missing or unreadable.
    pub fn unknown(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            ..Self::default()
        }
    }

    /// The wire form stamped on events.
    pub fn to_proto(&self) -> Container {
        Container {
            id: self.id.clone(),
            name: self.name.clone(),
            image: self.image.clone(),
            image_id: self.image_id.clone(),
            labels: self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

/// Why a `config.v2.json` could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// Not JSON of the expected shape.
    #[error("invalid config.v2.json: {0}")]
    Json(String),
    /// The file has no (or an empty) `ID`.
    #[error("config.v2.json has no container ID")]
    MissingId,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawConfigV2 {
    #[serde(rename = "ID", default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    config: Option<RawInnerConfig>,
    #[serde(default)]
    app_armor_profile: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawInnerConfig {
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    user: Option<String>,
}

/// Parses the contents of a `config.v2.json`.
pub fn parse_container_config(bytes: &[u8]) -> Result<ContainerMeta, MetaError> {
    let raw: RawConfigV2 =
        serde_json::from_slice(bytes).map_err(|e| MetaError::Json(e.to_string()))?;
    let id = raw
        .id
        .filter(|id| !id.is_empty())
        .ok_or(MetaError::MissingId)?;
    let name = raw.name.unwrap_or_default();
    let name = name.strip_prefix('/').unwrap_or(&name).to_owned();
    let (image, labels, user) = match raw.config {
        Some(inner) => (
            inner.image.unwrap_or_default(),
            inner.labels.unwrap_or_default(),
            inner.user.unwrap_or_default(),
        ),
        None => (String::new(), BTreeMap::new(), String::new()),
    };
    Ok(ContainerMeta {
        id,
        name,
        image,
        image_id: raw.image.unwrap_or_default(),
        labels,
        created_nanos: raw.created.as_deref().and_then(parse_time),
        user,
        apparmor_profile: raw.app_armor_profile.unwrap_or_default(),
    })
}

/// An RFC 3339 time in nanoseconds since the Unix epoch, if it parses and fits.
fn parse_time(value: &str) -> Option<i64> {
    let parsed = OffsetDateTime::parse(value, &Rfc3339).ok()?;
    i64::try_from(parsed.unix_timestamp_nanos()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "3f4e8a1c2b7d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081";

    #[test]
    fn realistic_fixture() {
        let bytes = include_bytes!("../../tests/fixtures/config.v2.json");
        let meta = parse_container_config(bytes).unwrap();
        assert_eq!(meta.id, ID);
        assert_eq!(meta.name, "web-frontend");
        assert_eq!(meta.image, "nginx:1.25-alpine");
        assert_eq!(
            meta.image_id,
            "sha256:8d7f2c1b6e5a4d3c2b1a0f9e8d7c6b5a49382716f5e4d3c2b1a0f9e8d7c6b5a4"
        );
        assert_eq!(meta.labels.len(), 3);
        assert_eq!(meta.labels["com.docker.compose.project"], "shop");
        assert_eq!(
            meta.labels["maintainer"],
            "NGINX Docker Maintainers <docker-maint@nginx.com>"
        );
        assert_eq!(meta.created_nanos, Some(1_704_164_645_123_456_789));
        let proto = meta.to_proto();
        assert_eq!(proto.name, "web-frontend");
        assert_eq!(proto.labels.len(), 3);
    }

    #[test]
    fn table() {
        // Input, then (id, name, label count) or a needle of the error.
        type Case = (
            &'static str,
            Result<(&'static str, &'static str, usize), &'static str>,
        );
        let cases: &[Case] = &[
            (
                r#"{"ID":"a1","Name":"/n","Config":{"Image":"i","Labels":null},"Image":"sha256:x"}"#,
                Ok(("a1", "n", 0)),
            ),
            (
                r#"{"ID":"a2","Name":"noslash","Config":null}"#,
                Ok(("a2", "noslash", 0)),
            ),
            (
                r#"{"ID":"a3","Config":{"Labels":{"k":"v"}}}"#,
                Ok(("a3", "", 1)),
            ),
            (
                r#"{"ID":"a4","Created":"garbage","Extra":[1,2,{"x":null}]}"#,
                Ok(("a4", "", 0)),
            ),
            (r#"{"Name":"/no-id"}"#, Err("no container ID")),
            (r#"{"ID":""}"#, Err("no container ID")),
            (r#"{"ID":5}"#, Err("invalid config.v2.json")),
            ("", Err("invalid config.v2.json")),
            (
                r#"{"ID":"a5","Config":{"Labels":{"k":1}}}"#,
                Err("invalid config.v2.json"),
            ),
        ];
        for (input, expected) in cases {
            match (parse_container_config(input.as_bytes()), expected) {
                (Ok(meta), Ok((id, name, labels))) => {
                    assert_eq!(
                        (meta.id.as_str(), meta.name.as_str(), meta.labels.len()),
                        (*id, *name, *labels),
                        "{input}"
                    );
                }
                (Err(err), Err(needle)) => {
                    assert!(err.to_string().contains(needle), "{input}: {err}");
                }
                (got, _) => panic!("{input}: unexpected {got:?}"),
            }
        }
    }
}
