//! `ld-protocol`'s client against the real supervisor on a real socket: every call
//! answers the typed value, refusals arrive as typed problems, the long poll answers
//! `Unchanged` on timeout and `Changed` at once on a change.

mod common;

use std::time::{Duration, Instant};

use common::{scope, Server, DEP};
use ld_protocol::{
    ActivateRequest, Assignment, CatalogQuery, ClientError, ConnectorType, CreateKeyRequest,
    Heartbeat, InstanceStatus, ListQuery, LocalInstanceStatus, Permission, PluginInfo,
    StatusReport, SupervisorClient,
};
use serde_json::json;

fn stdout_sink(key: &str) -> ActivateRequest {
    ActivateRequest {
        connector_key: "stdout".into(),
        connector_type: ConnectorType::Sink,
        instance_name: None,
        instance_key: Some(key.into()),
        config: Some(json!({"enabled": true, "plugin_config": {"password": "hunter2"}})),
    }
}

#[tokio::test]
async fn long_poll_is_unchanged_on_timeout_and_changed_at_once_on_a_change() {
    let server = Server::start().await;
    let node = server.api.with_api_key(&server.keys.node);
    // A node is given instances once it is live (has sent a heartbeat).
    node.heartbeat(
        "node-1",
        &Heartbeat {
            runtime_version: "test".into(),
            plugins: Vec::new(),
            instances: Vec::new(),
            at: 1,
        },
    )
    .await
    .unwrap();
    let Assignment::Changed { etag, instances } = node
        .instances("node-1", None, Duration::from_secs(1))
        .await
        .unwrap()
    else {
        panic!("the first answer is the list");
    };
    assert!(instances.is_empty());
    let etag = etag.expect("the list has an ETag");

    let started = Instant::now();
    let answer = node
        .instances("node-1", Some(&etag), Duration::from_secs(1))
        .await;
    assert!(matches!(answer, Ok(Assignment::Unchanged)), "{answer:?}");
    assert!(started.elapsed() >= Duration::from_millis(900), "it waited");

    let poll = tokio::spawn({
        let (node, etag) = (node.clone(), etag.clone());
        async move {
            let started = Instant::now();
            let answer = node
                .instances("node-1", Some(&etag), Duration::from_secs(30))
                .await;
            (answer, started.elapsed())
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let item = server
        .api
        .activate(&scope(), &stdout_sink("s1"))
        .await
        .unwrap();
    let (answer, took) = poll.await.unwrap();
    match answer.unwrap() {
        Assignment::Changed {
            etag: new,
            instances,
        } => {
            assert_ne!(new.as_deref(), Some(etag.as_str()));
            assert_eq!(instances.len(), 1);
            assert_eq!(instances[0].id, item.id);
            // The node asked for the secret values it needs to run the instance.
            assert_eq!(
                instances[0].config.values["plugin_config"]["password"],
                "hunter2"
            );
        }
        Assignment::Unchanged => panic!("the activation wakes the poll"),
    }
    assert!(
        took < Duration::from_secs(10),
        "woken by the change: {took:?}"
    );
}

#[tokio::test]
async fn refusals_are_typed_problems() {
    let server = Server::start().await;
    let unknown = ActivateRequest {
        connector_key: "no-such-connector".into(),
        ..stdout_sink("x")
    };
    let err = server.api.activate(&scope(), &unknown).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400), "{err}");
    let problem = err.problem().expect("a problem document");
    assert_eq!(problem.status, 400);
    assert!(!problem.code.is_empty(), "{problem:?}");
    assert!(
        err.to_string().contains(&problem.reason),
        "the error says why: {err}"
    );

    // A read key may list, but not with secrets shown, and not stop anything.
    let reader = server.api.with_api_key(&server.keys.read);
    assert!(reader.list_instances().await.unwrap().is_empty());
    let err = reader
        .list(&ListQuery {
            reveal_secrets: true,
            ..ListQuery::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(403), "{err}");
    let err = reader.stop(1).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(403), "{err}");

    let nobody = server.api.with_api_key("ldk_not-a-key");
    let err = nobody.list_instances().await.unwrap_err();
    assert_eq!(err.problem().map(|p| p.status), Some(401), "{err}");
}

#[tokio::test]
async fn user_calls_answer_typed_values() {
    let server = Server::start().await;
    let api = &server.api;
    let item = api.activate(&scope(), &stdout_sink("s1")).await.unwrap();
    assert_eq!(item.key, "s1");
    assert_eq!(item.connector_type, ConnectorType::Sink);
    assert_eq!(item.config.version, 1);
    // Users see secrets masked.
    let listed = api.instance(item.id).await.unwrap().expect("listed");
    assert_ne!(listed.config.values["plugin_config"]["password"], "hunter2");

    let updated = api
        .set_config(item.id, &json!({"enabled": true, "plugin_config": {}}))
        .await
        .unwrap();
    assert_eq!(updated.config.version, 2);
    assert_eq!(
        api.stop(item.id).await.unwrap().status,
        InstanceStatus::Inactive
    );
    assert_ne!(
        api.start(item.id).await.unwrap().status,
        InstanceStatus::Inactive
    );
    api.delete_instance(item.id).await.unwrap();
    assert!(api.instance(item.id).await.unwrap().is_none());
    let err = api.delete_instance(item.id).await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(404), "{err}");

    // Another deployment is another list.
    let other = api.for_deployment(DEP + 1);
    other.activate(&scope(), &stdout_sink("s1")).await.unwrap();
    assert_eq!(other.list_instances().await.unwrap().len(), 1);
    assert!(api.list_instances().await.unwrap().is_empty());
}

#[tokio::test]
async fn catalog_pages_filter_by_type() {
    let server = Server::start().await;
    let page = server
        .api
        .catalog(
            &scope(),
            &CatalogQuery {
                connector_type: Some(ConnectorType::Source),
                page: Some(1),
                results: Some(1),
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].connector_type, ConnectorType::Source);
    assert_eq!(page.total_pages, page.total_results);
    let all = server
        .api
        .catalog(&scope(), &CatalogQuery::default())
        .await
        .unwrap();
    assert!(all.total_results > page.total_results);
}

#[tokio::test]
async fn node_calls_reach_the_supervisor() {
    let server = Server::start().await;
    let node = server.api.with_api_key(&server.keys.node);
    let item = server
        .api
        .activate(&scope(), &stdout_sink("s1"))
        .await
        .unwrap();
    node.heartbeat(
        "n1",
        &Heartbeat {
            runtime_version: "test".into(),
            plugins: vec![PluginInfo {
                key: "stdout".into(),
                connector_type: ConnectorType::Sink,
                name: "Stdout sink".into(),
                description: String::new(),
                version: "1".into(),
                secret_fields: vec![],
            }],
            instances: vec![LocalInstanceStatus {
                instance_id: item.id,
                status: InstanceStatus::Active,
                reason: None,
                config_version: 1,
                messages: Some(42),
                lag: Some(3),
                partitions: vec![ld_protocol::PartitionOffsets {
                    stream: "s".into(),
                    topic: "t".into(),
                    partition: 0,
                    committed: Some(40),
                    end: Some(45),
                    lag: Some(3),
                }],
                source_state: None,
                offsets_applied: None,
            }],
            at: ld_supervisor::now_ms(),
        },
    )
    .await
    .unwrap();
    let report = StatusReport {
        node_id: "n1".into(),
        status: InstanceStatus::Active,
        reason: None,
        config_version: 1,
        at: ld_supervisor::now_ms(),
    };
    node.report_status(item.id, &report).await.unwrap();
    let shown = server.api.instance(item.id).await.unwrap().unwrap();
    assert_eq!(shown.status, InstanceStatus::Active);
    // The heartbeat's counters make the users' summary (one sample: 0 messages yet).
    assert_eq!(
        shown.activity,
        Some(ld_protocol::InstanceActivity {
            messages_last_minute: 0,
            lag: Some(3)
        })
    );
    // The node's last report of the partitions it reads.
    let offsets = server.api.offsets(item.id).await.unwrap();
    assert_eq!(offsets.nodes.len(), 1);
    assert_eq!(offsets.nodes[0].node_id, "n1");
    assert_eq!(offsets.nodes[0].partitions[0].committed, Some(40));
    // A node's own list carries no summary: it changes only when its work does.
    let mine = node
        .instances("n1", None, std::time::Duration::ZERO)
        .await
        .unwrap();
    let ld_protocol::client::Assignment::Changed { instances, .. } = mine else {
        panic!("a first answer")
    };
    assert!(!instances.is_empty());
    assert!(instances.iter().all(|i| i.activity.is_none()));
    // A report on an instance the supervisor no longer knows counts as delivered.
    node.report_status(item.id + 100, &report).await.unwrap();
    // A node id that is not an id is one bad path segment, refused naming it.
    let err = node
        .heartbeat(
            "a/b",
            &Heartbeat {
                runtime_version: "test".into(),
                plugins: vec![],
                instances: vec![],
                at: 0,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(400), "{err}");
    assert_eq!(
        err.problem().and_then(|p| p.field.as_deref()),
        Some("node_id")
    );
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked() {
    let server = Server::start().await;
    let created = server
        .api
        .create_key(&CreateKeyRequest {
            permissions: vec![Permission::Read],
            deployments: vec![],
            expires_at: None,
            expires_in_secs: None,
            name: Some("reader".into()),
        })
        .await
        .unwrap();
    let keys = server.api.list_keys().await.unwrap();
    assert!(keys.iter().any(|k| k.id == created.info.id));
    let reader = server.api.with_api_key(&created.key);
    assert!(reader.list_instances().await.is_ok());
    server.api.revoke_key(&created.info.id).await.unwrap();
    let err = reader.list_instances().await.unwrap_err();
    assert_eq!(err.status().map(|s| s.as_u16()), Some(401), "{err}");
}

#[tokio::test]
async fn a_closed_port_is_unreachable_with_its_cause() {
    // Bind and drop: the port was free a moment ago and nobody listens on it now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = SupervisorClient::new(&format!("http://127.0.0.1:{port}"), DEP, "k", &[]);
    match client
        .instances("node-1", None, Duration::from_secs(1))
        .await
    {
        Err(ClientError::Unreachable(why)) => {
            // reqwest's own text is only "error sending request"; the cause says why.
            assert!(why.to_lowercase().contains("refused"), "{why}")
        }
        other => panic!("unreachable: {other:?}"),
    }
}
