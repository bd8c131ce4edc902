//! Every stream backend against the one conformance suite
//! (`ld_connectord::stream::conformance`): the embedded log always; Apache Iggy when
//! `IGGY_TEST_ADDRESS` is set (e.g. `127.0.0.1:8090`, user and password from
//! `IGGY_TEST_USER`/`IGGY_TEST_PASSWORD`, default iggy/iggy) in a build with
//! `--features iggy`, else each of its tests prints a skip notice.

use ld_connectord::stream::{
    conformance::Harness, embedded::EmbeddedSettings, iggy_settings::IggySettings, StreamSettings,
};

/// The embedded log as the engine opens it, with `durability = "batch"` (the suite's
/// durability checks need the strictest) and a retention limit it never reaches, so
/// that its maintenance job is checked too.
struct Embedded;

impl Harness for Embedded {
    fn settings(&self, partitions: u32) -> Option<StreamSettings> {
        Some(StreamSettings::Embedded(EmbeddedSettings {
            partitions,
            retention_bytes: Some(1 << 30),
            ..EmbeddedSettings::default()
        }))
    }
}

/// A real Iggy server, as `[stream] backend = "iggy"` configures it.
struct Iggy(IggySettings);

impl Harness for Iggy {
    fn settings(&self, partitions: u32) -> Option<StreamSettings> {
        Some(StreamSettings::Iggy(IggySettings {
            partitions,
            ..self.0.clone()
        }))
    }
}

fn iggy() -> Option<Iggy> {
    let Ok(address) = std::env::var("IGGY_TEST_ADDRESS") else {
        println!("skipped: IGGY_TEST_ADDRESS is not set");
        return None;
    };
    if cfg!(not(feature = "iggy")) {
        println!("skipped: IGGY_TEST_ADDRESS is set but this build has no iggy backend (--features iggy)");
        return None;
    }
    let mut settings = IggySettings::new(address);
    if let Ok(user) = std::env::var("IGGY_TEST_USER") {
        settings.username = user;
    }
    if let Ok(password) = std::env::var("IGGY_TEST_PASSWORD") {
        settings.password = ld_connectord::config::Secret::new(password);
    }
    Some(Iggy(settings))
}

mod embedded {
    ld_connectord::stream_conformance_tests!(Some(super::Embedded));
}

mod iggy {
    ld_connectord::stream_conformance_tests!(super::iggy());
}
