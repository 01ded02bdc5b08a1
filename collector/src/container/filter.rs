//! Which containers are collected: include/exclude by name, image and label (glob patterns),
//! and the collector's own container, found from `/proc/self`. Pure: the readers of `/proc`
//! are in [`crate::container`].

use std::collections::BTreeMap;

use glob::Pattern;

/// Why a filter setting was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{pattern:?} is not a valid glob pattern: {reason}")]
pub struct FilterError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The filter settings, as in the config file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FilterSpec {
    /// Container names to collect (any may match); empty: all.
    pub include_names: Vec<String>,
    /// Container names never collected.
    pub exclude_names: Vec<String>,
    /// Image references to collect (any may match); empty: all.
    pub include_images: Vec<String>,
    /// Image references never collected.
    pub exclude_images: Vec<String>,
    /// `key=glob` or `key`: every one must match for a container to be collected.
    pub include_labels: Vec<String>,
    /// `key=glob` or `key`: any match excludes the container.
    pub exclude_labels: Vec<String>,
}

struct LabelPattern {
    key: String,
    value: Option<Pattern>,
}

impl LabelPattern {
    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        labels
            .get(&self.key)
            .is_some_and(|v| self.value.as_ref().is_none_or(|p| p.matches(v)))
    }
}

/// Compiled filters.
pub struct Filter {
    include_names: Vec<Pattern>,
    exclude_names: Vec<Pattern>,
    include_images: Vec<Pattern>,
    exclude_images: Vec<Pattern>,
    include_labels: Vec<LabelPattern>,
    exclude_labels: Vec<LabelPattern>,
}

fn compile(patterns: &[String]) -> Result<Vec<Pattern>, FilterError> {
    patterns
        .iter()
        .map(|p| {
            Pattern::new(p).map_err(|e| FilterError {
                pattern: p.clone(),
                reason: e.msg.to_owned(),
            })
        })
        .collect()
}

fn compile_labels(patterns: &[String]) -> Result<Vec<LabelPattern>, FilterError> {
    patterns
        .iter()
        .map(|p| {
            let (key, value) = match p.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (p.as_str(), None),
            };
            if key.is_empty() {
                return Err(FilterError {
                    pattern: p.clone(),
                    reason: "the label key is empty".to_owned(),
                });
            }
            let value = value
                .map(|v| compile(&[v.to_owned()]).map(|mut c| c.remove(0)))
                .transpose()
                .map_err(|e| FilterError {
                    pattern: p.clone(),
                    reason: e.reason,
                })?;
            Ok(LabelPattern {
                key: key.to_owned(),
                value,
            })
        })
        .collect()
}

impl Filter {
    /// Compiles the patterns; a bad one is an error that names it.
    pub fn new(spec: &FilterSpec) -> Result<Self, FilterError> {
        Ok(Self {
            include_names: compile(&spec.include_names)?,
            exclude_names: compile(&spec.exclude_names)?,
            include_images: compile(&spec.include_images)?,
            exclude_images: compile(&spec.exclude_images)?,
            include_labels: compile_labels(&spec.include_labels)?,
            exclude_labels: compile_labels(&spec.exclude_labels)?,
        })
    }

    /// Whether a container with this name, image and labels is collected.
    pub fn accepts(&self, name: &str, image: &str, labels: &BTreeMap<String, String>) -> bool {
        let any = |ps: &[Pattern], v: &str| ps.iter().any(|p| p.matches(v));
        (self.include_names.is_empty() || any(&self.include_names, name))
            && (self.include_images.is_empty() || any(&self.include_images, image))
            && self.include_labels.iter().all(|l| l.matches(labels))
            && !any(&self.exclude_names, name)
            && !any(&self.exclude_images, image)
            && !self.exclude_labels.iter().any(|l| l.matches(labels))
    }
}

/// The id of the container this process runs in, from the text of `/proc/self/cgroup`, then
/// `/proc/self/mountinfo` (Docker bind-mounts `/var/lib/docker/containers/<id>/hostname`
/// and friends), then a host name of 12 hex digits (Docker's default: a prefix of the id).
pub fn own_container_id(cgroup: &str, mountinfo: &str, hostname: &str) -> Option<String> {
    let from_cgroup = cgroup.lines().find_map(|line| {
        let path = line.rsplit(':').next()?;
        path.split('/').rev().find_map(|part| {
            let part = part.strip_prefix("docker-").unwrap_or(part);
            let part = part.strip_suffix(".scope").unwrap_or(part);
            is_container_id(part).then(|| part.to_owned())
        })
    });
    let from_mounts = || {
        mountinfo.lines().find_map(|line| {
            let at = line.find("/containers/")? + "/containers/".len();
            let id = line.get(at..at + 64)?;
            (is_container_id(id) && line[at + 64..].starts_with('/')).then(|| id.to_owned())
        })
    };
    from_cgroup.or_else(from_mounts).or_else(|| {
        (hostname.len() == 12 && hostname.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| hostname.to_ascii_lowercase())
    })
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(spec: &FilterSpec, container: (&str, &str, &[(&str, &str)]), expected: bool) {
        let labels = container
            .2
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let filter = Filter::new(spec).unwrap();
        assert_eq!(
            filter.accepts(container.0, container.1, &labels),
            expected,
            "{spec:?} {container:?}"
        );
    }

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn includes_and_excludes_by_name_image_and_label() {
        let web = (
            "web-1",
            "nginx:1.25",
            &[("app", "shop"), ("tier", "front")][..],
        );
        let db = ("db", "postgres:16", &[("app", "shop")][..]);
        let none = FilterSpec::default();
        let names = FilterSpec {
            include_names: list(&["web-*", "api"]),
            ..FilterSpec::default()
        };
        let images = FilterSpec {
            exclude_images: list(&["postgres:*"]),
            ..FilterSpec::default()
        };
        let labels = FilterSpec {
            include_labels: list(&["app=sh*", "tier"]),
            ..FilterSpec::default()
        };
        let exclude_label = FilterSpec {
            exclude_labels: list(&["tier=front"]),
            ..FilterSpec::default()
        };
        let cases = [
            (&none, web, true),
            (&none, db, true),
            (&names, web, true),
            (&names, db, false),
            (&images, web, true),
            (&images, db, false),
            (&labels, web, true),
            (&labels, db, false),
            (&exclude_label, web, false),
            (&exclude_label, db, true),
        ];
        for (spec, container, expected) in cases {
            check(spec, container, expected);
        }
    }

    #[test]
    fn bad_patterns_are_named() {
        let spec = FilterSpec {
            include_names: list(&["web[", "ok"]),
            ..FilterSpec::default()
        };
        assert_eq!(Filter::new(&spec).err().unwrap().pattern, "web[");
        let spec = FilterSpec {
            exclude_labels: list(&["=x"]),
            ..FilterSpec::default()
        };
        assert!(Filter::new(&spec).is_err());
    }

    #[test]
    fn own_container_is_found_in_cgroup_mountinfo_or_hostname() {
        let id = "9d9bb400991f31c26ad51131506a4a47684881c22e5e596990bdd5ef59e9864f";
        let cases: &[(&str, &str, &str, Option<&str>)] = &[
            (&format!("12:memory:/docker/{id}\n"), "", "box", Some(id)),
            (
                &format!("0::/system.slice/docker-{id}.scope\n"),
                "",
                "box",
                Some(id),
            ),
            (
                "0::/\n",
                &format!(
                    "1 2 8:1 /var/lib/docker/containers/{id}/hostname /etc/hostname rw - ext4 /dev/sda1 rw\n"
                ),
                "box",
                Some(id),
            ),
            ("0::/user.slice\n", "", "9d9bb400991f", Some("9d9bb400991f")),
            (
                "0::/user.slice\n",
                "1 2 8:1 / / rw - ext4 /dev/sda1 rw\n",
                "web1",
                None,
            ),
        ];
        for (cgroup, mountinfo, hostname, expected) in cases {
            assert_eq!(
                own_container_id(cgroup, mountinfo, hostname).as_deref(),
                *expected,
                "{cgroup} {mountinfo}"
            );
        }
    }
}
