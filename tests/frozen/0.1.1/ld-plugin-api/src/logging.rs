//! Forwarding the plugin's `tracing` (and `log`) events to the host. The library has its
//! own copy of `tracing`, whose global subscriber the host never sees; this layer is that
//! subscriber and hands each event to the host's callback, which logs it inside the
//! calling instance's span.

use std::{fmt::Write, sync::OnceLock};

use abi_stable::std_types::RStr;
use tracing::{field::Field, Event, Level, Subscriber};
use tracing_subscriber::{layer::Context, prelude::*, Layer};

use crate::ffi::{HostApi, LogLevel, LogRecord};

static HOST: OnceLock<HostApi> = OnceLock::new();

fn to_log_level(level: &Level) -> LogLevel {
    match *level {
        Level::TRACE => LogLevel::Trace,
        Level::DEBUG => LogLevel::Debug,
        Level::INFO => LogLevel::Info,
        Level::WARN => LogLevel::Warn,
        Level::ERROR => LogLevel::Error,
    }
}

fn to_level_filter(level: LogLevel) -> tracing_subscriber::filter::LevelFilter {
    use tracing_subscriber::filter::LevelFilter;
    match level {
        LogLevel::Trace => LevelFilter::TRACE,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    }
}

struct Forward;

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.rest, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.rest, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for Forward {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let Some(host) = HOST.get() else { return };
        let mut fields = Fields::default();
        event.record(&mut fields);
        fields.message.push_str(&fields.rest);
        (host.log)(LogRecord {
            level: to_log_level(event.metadata().level()),
            target: RStr::from(event.metadata().target()),
            message: RStr::from(fields.message.as_str()),
        });
    }
}

/// Installs the forwarding subscriber and a panic hook that reports panics to the host.
/// Called by the host once per library; later calls are ignored.
pub extern "C" fn attach_host(host: HostApi) {
    // Never unwind out of an extern "C" function.
    let _ = std::panic::catch_unwind(|| {
        if HOST.set(host).is_err() {
            return;
        }
        let _ = tracing_subscriber::registry()
            .with(Forward.with_filter(to_level_filter(host.max_level)))
            .try_init();
        std::panic::set_hook(Box::new(|info| {
            if let Some(host) = HOST.get() {
                let message = format!("plugin panicked: {info}");
                (host.log)(LogRecord {
                    level: LogLevel::Error,
                    target: RStr::from("panic"),
                    message: RStr::from(message.as_str()),
                });
            }
        }));
    });
}
