//! `plugin_config` fields accepted so that configs written for Iggy's connectors load,
//! but that have no effect here: named in one warning per instance.

use std::{
    collections::HashSet,
    sync::{Mutex, OnceLock},
};

/// A field that is accepted but not used, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unused {
    /// The `plugin_config` field.
    pub field: &'static str,
    /// Why it has no effect, and where it helps, what to use instead.
    pub reason: &'static str,
}

/// The fields in one line, those with the same reason grouped:
/// `max_retries, retry_delay (...); batch_size (...)`.
pub fn describe_unused(unused: &[Unused]) -> String {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for u in unused {
        match groups.iter_mut().find(|(reason, _)| *reason == u.reason) {
            Some((_, fields)) => fields.push(u.field),
            None => groups.push((u.reason, vec![u.field])),
        }
    }
    groups
        .iter()
        .map(|(reason, fields)| format!("{} ({reason})", fields.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Logs `unused` in one warning naming the instance. The host builds the plugin again on
/// every restart after a failure; the warning is given once per instance and field list
/// in this process, so a restart loop does not repeat it. Returns whether it was logged.
pub fn warn_unused(instance: &str, unused: &[Unused]) -> bool {
    if unused.is_empty() {
        return false;
    }
    static WARNED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let fields = describe_unused(unused);
    let first = WARNED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(format!("{instance}\n{fields}"));
    if first {
        tracing::warn!(
            instance = %instance,
            "instance {instance}: plugin_config fields accepted for Iggy compatibility but not used: {fields}"
        );
    }
    first
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Unused = Unused {
        field: "max_retries",
        reason: "the host retries",
    };
    const B: Unused = Unused {
        field: "batch_size",
        reason: "one COPY per batch",
    };
    const C: Unused = Unused {
        field: "retry_delay",
        reason: "the host retries",
    };

    #[test]
    fn fields_are_grouped_by_reason_and_warned_once_per_instance() {
        assert_eq!(
            describe_unused(&[A, B, C]),
            "max_retries, retry_delay (the host retries); batch_size (one COPY per batch)"
        );
        assert!(!warn_unused("i1", &[]));
        assert!(warn_unused("i1", &[A, B]));
        assert!(!warn_unused("i1", &[A, B]), "a restart does not repeat it");
        assert!(warn_unused("i2", &[A, B]), "another instance has its own");
        assert!(warn_unused("i1", &[A]), "a changed config is named again");
    }
}
