//! Receives plugin log events and re-emits them through the host's `tracing`, inside
//! whatever span is current on the calling thread (the instance's span when the plugin
//! logs while being polled by its task).

use ld_plugin_api::ffi::{HostApi, LogLevel, LogRecord};
use tracing::level_filters::LevelFilter;

extern "C" fn forward(record: LogRecord<'_>) {
    // Never unwind back into the plugin.
    let _ = std::panic::catch_unwind(|| {
        let target = record.target.as_str();
        let message = record.message.as_str();
        match record.level {
            LogLevel::Error => {
                tracing::error!(target: "plugin", plugin_target = target, "{message}")
            }
            LogLevel::Warn => tracing::warn!(target: "plugin", plugin_target = target, "{message}"),
            LogLevel::Info => tracing::info!(target: "plugin", plugin_target = target, "{message}"),
            LogLevel::Debug => {
                tracing::debug!(target: "plugin", plugin_target = target, "{message}")
            }
            LogLevel::Trace => {
                tracing::trace!(target: "plugin", plugin_target = target, "{message}")
            }
        }
    });
}

/// The callbacks handed to every library; the level follows the host's current filter.
pub fn host_api() -> HostApi {
    let max_level = match LevelFilter::current() {
        LevelFilter::TRACE => LogLevel::Trace,
        LevelFilter::DEBUG => LogLevel::Debug,
        LevelFilter::INFO => LogLevel::Info,
        LevelFilter::WARN => LogLevel::Warn,
        _ => LogLevel::Error,
    };
    HostApi {
        log: forward,
        max_level,
    }
}
