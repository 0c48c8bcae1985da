//! `kratos.yml` loading: the tutorial's and the quickstart's files load unchanged; bad files
//! are reported with file, line and key.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::io::Write;

use common::reference;
use portcullis_identity::IdentityConfig;

#[test]
fn tutorial_kratos_yml_loads_unchanged() {
    let path = reference().join("tutorial/kratos/kratos.yml");
    let config = IdentityConfig::load_with_env(&path, false, []).expect("tutorial config loads");
    assert_eq!(config.public_base_url().as_str(), "http://127.0.0.1:4433/");
    assert_eq!(config.dsn().as_deref(), Some("memory"));
    assert_eq!(config.public_port(), 4433);
    assert_eq!(config.admin_port(), 4434);
    assert!(!config.dev());
    let schema = config.schemas().default_schema().expect("default schema");
    assert_eq!(schema.raw()["title"], "Person");
}

#[test]
fn quickstart_kratos_yml_loads_unchanged() {
    let path = reference().join("kratos/quickstart-email-password/kratos.yml");
    let config = IdentityConfig::load_with_env(&path, true, []).expect("quickstart config loads");
    assert!(config.dev());
    assert!(config.schemas().get("default").is_some());
}

#[test]
fn environment_overrides_apply() {
    let path = reference().join("tutorial/kratos/kratos.yml");
    let config = IdentityConfig::load_with_env(
        &path,
        true,
        [
            (
                "DSN".to_string(),
                "sqlite:///tmp/kratos.db?_fk=true".to_string(),
            ),
            (
                "SERVE_PUBLIC_BASE_URL".to_string(),
                "http://localhost:9999/".to_string(),
            ),
            ("SERVE_PUBLIC_PORT".to_string(), "9999".to_string()),
        ],
    )
    .expect("loads");
    assert_eq!(config.dsn().as_deref(), Some("sqlite:///tmp/kratos.db"));
    assert_eq!(config.public_base_url().as_str(), "http://localhost:9999/");
    assert_eq!(config.public_port(), 9999);
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .expect("write");
    path
}

const SCHEMA: &str = r#"{"properties":{"traits":{"type":"object","properties":{"email":{"type":"string",
  "ory.sh/kratos":{"credentials":{"password":{"identifier":true}}}}}}}}"#;

#[test]
fn invalid_config_names_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tmp");
    write(dir.path(), "identity.schema.json", SCHEMA);
    let path = write(
        dir.path(),
        "kratos.yml",
        "dsn: memory\nserve:\n  public:\n    port: not-a-port\nselfservice:\n  default_browser_return_url: http://127.0.0.1:4455/\nidentity:\n  schemas:\n    - id: default\n      url: file://identity.schema.json\n",
    );
    let err = IdentityConfig::load_with_env(&path, true, []).expect_err("invalid port");
    let msg = err.to_string();
    assert!(msg.contains(&format!("{}:4", path.display())), "{msg}");
    assert!(msg.contains("serve.public.port"), "{msg}");

    // A relative schema URL resolves next to the file; a missing one is named precisely.
    let ok = write(
        dir.path(),
        "ok.yml",
        "dsn: memory\nselfservice:\n  default_browser_return_url: http://127.0.0.1:4455/\nidentity:\n  schemas:\n    - id: default\n      url: file://identity.schema.json\n",
    );
    if let Err(e) = IdentityConfig::load_with_env(&ok, true, []) {
        panic!("{e}");
    }
    let missing = write(
        dir.path(),
        "missing.yml",
        "dsn: memory\nselfservice:\n  default_browser_return_url: http://127.0.0.1:4455/\nidentity:\n  schemas:\n    - id: default\n      url: file://nope.schema.json\n",
    );
    let msg = IdentityConfig::load_with_env(&missing, true, [])
        .expect_err("missing schema")
        .to_string();
    assert!(msg.contains("identity.schemas.0.url"), "{msg}");
    assert!(msg.contains("missing.yml:"), "{msg}");

    let broken = write(dir.path(), "broken.yml", "dsn: [memory\nserve: {}\n");
    let msg = IdentityConfig::load_with_env(&broken, true, [])
        .expect_err("syntax")
        .to_string();
    assert!(msg.contains("broken.yml:"), "{msg}");
}
