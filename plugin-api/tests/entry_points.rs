//! Every entry point of the boundary, round-tripped in process: the root module that
//! `export_plugin!` builds is initialised and checked as the host does
//! (`LibHeader::init_root_module`), then each function and each method of the sink and
//! source objects is called through it.

use std::sync::Mutex;

use abi_stable::std_types::{RResult, RSlice};
use ld_plugin_api::ffi::{
    ConnectorType, HostApi, LogLevel, LogRecord, PluginModRef, SinkInit, SourceInit,
};
use ld_plugin_api::{
    export_plugin, ErrorKind, Header, InstanceContext, Message, PluginError, Rejection, Schema,
    Sink, SinkBatch, Source, SourceBatch,
};

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct EchoConfig {
    /// Reject the message at this offset.
    reject: Option<u64>,
}

struct EchoSink {
    reject: Option<u64>,
    rejected: Vec<Rejection>,
    consumed: u64,
}

impl Sink for EchoSink {
    type Config = EchoConfig;
    fn new(c: EchoConfig, ctx: &InstanceContext) -> Result<Self, PluginError> {
        assert_eq!(ctx.instance_key(), "echo-1");
        Ok(EchoSink {
            reject: c.reject,
            rejected: Vec::new(),
            consumed: 0,
        })
    }
    async fn consume(&mut self, batch: SinkBatch<'_>) -> Result<(), PluginError> {
        tracing::info!(messages = batch.len(), "consumed");
        for m in batch.messages() {
            if Some(m.offset()) == self.reject {
                self.rejected.push(Rejection::new(m.offset(), "asked to"));
            }
        }
        self.consumed += 1;
        Ok(())
    }
    async fn flush(&mut self, consumed: u64, closing: bool) -> Result<u64, PluginError> {
        Ok(if closing { consumed } else { consumed - 1 })
    }
    fn rejected(&mut self) -> Vec<Rejection> {
        std::mem::take(&mut self.rejected)
    }
    async fn close(&mut self) -> Result<(), PluginError> {
        Err(PluginError::transient(format!(
            "closed after {}",
            self.consumed
        )))
    }
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
struct CountConfig {}

struct CountSource {
    next: u64,
    committed: Vec<u64>,
}

impl Source for CountSource {
    type Config = CountConfig;
    type State = u64;
    fn new(_: CountConfig, state: Option<u64>, _: &InstanceContext) -> Result<Self, PluginError> {
        Ok(CountSource {
            next: state.unwrap_or(0),
            committed: Vec::new(),
        })
    }
    async fn open(&mut self) -> Result<(), PluginError> {
        Err(PluginError::transient("not yet"))
    }
    async fn poll(&mut self) -> Result<SourceBatch, PluginError> {
        let mut batch = SourceBatch::new();
        batch.push(Schema::Text, self.next.to_string().as_bytes());
        self.next += 1;
        batch.set_state(&self.next)?;
        Ok(batch)
    }
    async fn committed(&mut self, seq: u64) -> Result<(), PluginError> {
        self.committed.push(seq);
        if seq > 1 {
            panic!("committed {:?}", self.committed);
        }
        Ok(())
    }
}

export_plugin! {
    key: "echo",
    name: "Echo",
    description: "Round-trips every entry point",
    source: CountSource,
    sink: EchoSink,
}

static LOGS: Mutex<Vec<(LogLevel, String)>> = Mutex::new(Vec::new());

extern "C" fn collect(record: LogRecord<'_>) {
    LOGS.lock()
        .unwrap()
        .push((record.level, record.message.as_str().to_string()));
}

fn module() -> PluginModRef {
    LD_PLUGIN_ROOT_MODULE
        .init_root_module::<PluginModRef>()
        .expect("the root module passes abi_stable's layout check")
}

#[test]
fn info_and_validate_config() {
    let m = module();
    let info = (m.info())();
    assert_eq!(info.key.as_str(), "echo");
    assert_eq!(info.version.as_str(), env!("CARGO_PKG_VERSION"));
    let sink = info.sink.into_option().expect("a sink");
    assert!(sink.config_schema.as_str().contains("reject"));
    assert!(info.source.is_some());

    let validate = m.validate_config();
    assert!(validate(ConnectorType::Sink, r#"{"reject": 3}"#.into()).is_ok());
    let RResult::RErr(e) = validate(ConnectorType::Sink, r#"{"reject": "x"}"#.into()) else {
        panic!("a wrong field is refused");
    };
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
    assert!(e.message().starts_with("plugin_config.reject"), "{e}");
    assert!(validate(ConnectorType::Source, "{}".into()).is_ok());
}

#[tokio::test]
async fn every_sink_call_round_trips() {
    let m = module();
    (m.attach_host())(HostApi {
        log: collect,
        max_level: LogLevel::Info,
    });
    let mut sink = (m.new_sink())(SinkInit {
        instance_key: "echo-1".into(),
        config: r#"{"reject": 11}"#.into(),
    })
    .into_result()
    .expect("built");
    sink.open().await.into_result().unwrap();
    let headers = [Header::new("k", b"v")];
    let messages = [
        Message::new(1, 10, 5, Schema::Json, &headers, b"{}"),
        Message::new(2, 11, 6, Schema::Json, &[], b"{}"),
    ];
    sink.consume(SinkBatch::new("s", "t", 0, &messages))
        .await
        .into_result()
        .unwrap();
    let rejected = sink.rejected().into_result().unwrap();
    assert_eq!(rejected.as_slice(), &[Rejection::new(11, "asked to")]);
    assert_eq!(sink.flush(1, false).await.into_result().unwrap(), 0);
    assert_eq!(sink.flush(1, true).await.into_result().unwrap(), 1);
    let err = sink.close().await.into_result().unwrap_err();
    assert_eq!(
        (err.kind(), err.message()),
        (ErrorKind::Transient, "closed after 1")
    );
    assert!(
        LOGS.lock()
            .unwrap()
            .iter()
            .any(|(level, text)| *level == LogLevel::Info && text.contains("consumed")),
        "the plugin's log reached the host: {:?}",
        LOGS.lock().unwrap()
    );
}

#[tokio::test]
async fn every_source_call_round_trips() {
    let m = module();
    let state = b"41";
    let mut source = (m.new_source())(SourceInit {
        instance_key: "count-1".into(),
        config: "{}".into(),
        state: abi_stable::std_types::ROption::RSome(RSlice::from_slice(state)),
    })
    .into_result()
    .expect("built");
    let err = source.open().await.into_result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
    let mut batch = source.poll().await.into_result().unwrap();
    let first = batch.iter().next().unwrap();
    assert_eq!(
        (first.schema(), first.payload()),
        (Schema::Text, &b"41"[..])
    );
    assert_eq!(batch.take_state().as_deref(), Some(&b"42"[..]));
    source.committed(1).await.into_result().unwrap();
    let err = source.committed(2).await.into_result().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Panicked, "a panic is caught: {err}");
    assert!(err.message().contains("committed [1, 2]"), "{err}");
    source.close().await.into_result().unwrap();

    let bad_state = (m.new_source())(SourceInit {
        instance_key: "count-2".into(),
        config: "{}".into(),
        state: abi_stable::std_types::ROption::RSome(RSlice::from_slice(b"not json")),
    });
    let RResult::RErr(e) = bad_state else {
        panic!("an unreadable state is refused");
    };
    assert!(e.message().contains("saved source state"), "{e}");
}
