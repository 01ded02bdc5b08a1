//! Fuzzes the parsers of a container's `config.v2.json` (`parse_container_config`) and
//! `hostconfig.json` (`parse_host_config`), which the collector reads from Docker's
//! directory (writable by anyone who can start a container with crafted labels or binds).
//!
//! Checks beyond "no panic": a parsed config has a non-empty id and its wire form keeps
//! every label; a privileged container always runs without seccomp (an explicit AppArmor
//! profile still wins, as in Docker); every posture field and the summary can be made.
#![no_main]

use libfuzzer_sys::fuzz_target;
use logward_collector::docker::meta::parse_container_config;
use logward_collector::docker::posture::parse_host_config;

fuzz_target!(|data: &[u8]| {
    let (user, apparmor) = match parse_container_config(data) {
        Ok(meta) => {
            assert!(!meta.id.is_empty(), "empty id accepted");
            let proto = meta.to_proto();
            assert_eq!(proto.labels.len(), meta.labels.len());
            assert_eq!(proto.id, meta.id);
            (meta.user, meta.apparmor_profile)
        }
        Err(_) => (String::new(), String::new()),
    };
    if let Ok(posture) = parse_host_config(data, &user, &apparmor) {
        if posture.privileged {
            assert_eq!(posture.seccomp, "unconfined");
        }
        assert!(!posture.user.is_empty());
        let fields = posture.fields();
        assert_eq!(fields.len(), 16);
        assert!(!posture.summary().is_empty());
    }
});
