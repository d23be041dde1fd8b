//! TLS to the broker, against a private RabbitMQ node with a TLS listener
//! that asks for a client certificate (mutual TLS). The CA, the node's and
//! the client's certificates are made here (`rcgen`), thrown away after.
//!
//! One test, in steps, on one node: a node takes seconds to start, and the
//! steps share it. A binary of its own because it starts a broker node
//! ([`support::node::Node`]), never touching the shared one.

#[allow(dead_code)]
#[path = "it/helpers.rs"]
mod helpers;
#[allow(dead_code)]
#[path = "it/procs.rs"]
mod procs;
#[allow(dead_code)]
mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use tenderflow::config::{AmqpTlsSettings, Settings};
use tenderflow::secret::Secret;
use tenderflow::submit::Outcome;

use helpers::{TestPipeline, outcomes};
use procs::settings_env;
use support::node::Node;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_tenderflow");

/// A certificate authority of the test.
struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate for `names`, for a server or a client; (cert, key) PEM.
    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Writes `text` as `dir/name` and returns the path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn amqps_with_a_private_ca_and_a_client_certificate_runs_and_wrong_certificates_stop_at_start()
 {
    let ca = Ca::new("tenderflow test CA");
    let (server_cert, server_key) = ca.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let (client_cert, client_key) =
        ca.issue(&["tenderflow-client"], ExtendedKeyUsagePurpose::ClientAuth);
    let port = helpers::free_port();
    let node = Node::start_with(
        &[
            ("ca.pem", ca.pem.as_bytes()),
            ("server.pem", server_cert.as_bytes()),
            ("server-key.pem", server_key.as_bytes()),
        ],
        &format!(
            "listeners.ssl.1 = 127.0.0.1:{port}\n\
             ssl_options.cacertfile = {{dir}}/ca.pem\n\
             ssl_options.certfile = {{dir}}/server.pem\n\
             ssl_options.keyfile = {{dir}}/server-key.pem\n\
             ssl_options.verify = verify_peer\n\
             ssl_options.fail_if_no_peer_cert = true"
        ),
    );
    let files = tempfile::tempdir().unwrap();
    let tls = AmqpTlsSettings {
        ca_file: Some(write(files.path(), "ca.pem", &ca.pem)),
        cert_file: Some(write(files.path(), "client.pem", &client_cert)),
        key_file: Some(write(files.path(), "client-key.pem", &client_key)),
    };
    let url = format!("amqps://guest:guest@localhost:{port}/%2f");

    // 1. The pipeline end to end over TLS, the connections TLS on the
    //    broker's side too.
    let pipeline = {
        let (url, tls) = (url.clone(), tls.clone());
        TestPipeline::new(move |settings, _| {
            settings.amqp.url = Secret::new(url);
            settings.amqp.tls = tls;
        })
    };
    tenderflow::broker::check_tls(&pipeline.settings)
        .await
        .expect("the right CA and client certificate pass the start-up check");
    pipeline.start_all();
    let follower = pipeline.follower().await;
    let tasks = pipeline.submit_files(&["cn_selection.md"]).await;
    let ended = outcomes(follower, &tasks, 120).await;
    assert!(
        matches!(ended[&tasks[0]], Outcome::Completed { .. }),
        "{ended:?}"
    );
    // The node is the test's own: every connection on it is the pipeline's.
    let listing = node.ctl_ok(&["list_connections", "name", "ssl", "peer_cert_subject"]);
    let ours: Vec<&str> = listing.lines().filter(|l| l.contains(" -> ")).collect();
    assert!(!ours.is_empty(), "{listing}");
    for line in &ours {
        assert!(
            line.contains("true") && line.contains("tenderflow-client"),
            "a connection without TLS or without our certificate: {line}"
        );
    }

    // 2. A CA that did not sign the broker's certificate: the start-up
    //    check says so, and a worker exits with that error at once instead
    //    of retrying; the password stays out of what it prints.
    let other = Ca::new("another CA");
    let wrong_ca = AmqpTlsSettings {
        ca_file: Some(write(files.path(), "other-ca.pem", &other.pem)),
        ..tls.clone()
    };
    let err = check(&url, &wrong_ca).await.unwrap_err();
    assert!(err.contains("TLS to the broker"), "{err}");
    assert!(err.to_lowercase().contains("unknownissuer"), "{err}");
    let secret_url = format!("amqps://guest:s3cret-pw@localhost:{port}/%2f");
    let mut settings = (*pipeline.settings).clone();
    settings.amqp.url = Secret::new(secret_url);
    let mut env = settings_env(&settings);
    for (key, path) in [
        ("TENDERFLOW__AMQP__TLS__CA_FILE", &wrong_ca.ca_file),
        ("TENDERFLOW__AMQP__TLS__CERT_FILE", &wrong_ca.cert_file),
        ("TENDERFLOW__AMQP__TLS__KEY_FILE", &wrong_ca.key_file),
    ] {
        env.push((key.into(), path.as_ref().unwrap().display().to_string()));
    }
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(BIN)
            .args(["worker", "parse"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .output(),
    )
    .await
    .expect("a worker with a wrong CA ends at once")
    .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!output.status.success(), "{printed}");
    assert!(printed.contains("TLS to the broker"), "{printed}");
    assert!(
        !printed.contains("s3cret-pw"),
        "the password is printed: {printed}"
    );

    // 3. The URL's host is not the name in the broker's certificate.
    let by_address = format!("amqps://guest:guest@127.0.0.1:{port}/%2f");
    let err = check(&by_address, &tls).await.unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");

    // 4. No client certificate, where the broker asks for one.
    let anonymous = AmqpTlsSettings {
        cert_file: None,
        key_file: None,
        ..tls.clone()
    };
    let err = check(&url, &anonymous).await.unwrap_err();
    assert!(err.contains("TLS to the broker"), "{err}");
    assert!(err.contains("CertificateRequired"), "{err}");

    pipeline.teardown().await;
    drop(node);
}

/// The start-up check with `tls` against `url`, its error as text.
async fn check(url: &str, tls: &AmqpTlsSettings) -> Result<(), String> {
    let mut settings = Settings::load(None).unwrap();
    settings.amqp.url = Secret::new(url.to_string());
    settings.amqp.tls = tls.clone();
    settings.validate().map_err(|e| format!("{e:#}"))?;
    tenderflow::broker::check_tls(&settings)
        .await
        .map_err(|e| format!("{e:#}"))
}
