//! Certificates, SNIs and CA certificates: the Admin API with Kong's validation and
//! conflicts, the TLS lookup compiled from them (Kong's precedence), DB-less declarative
//! configuration and convergence between nodes. Every certificate is generated here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use portcullis_db::Db;
use portcullis_db::testing::TestDb;
use portcullis_gateway::certificates::{CertificateTable, CertifiedPair};
use portcullis_gateway::{Gateway, GatewayOptions};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use common::{Stack, start, start_with};

/// A self-signed leaf: (certificate PEM, key PEM, certificate DER).
struct Leaf {
    cert: String,
    key: String,
    der: Vec<u8>,
}

fn leaf_with(names: &[&str], alg: &'static rcgen::SignatureAlgorithm) -> Leaf {
    let key = KeyPair::generate_for(alg).expect("key");
    let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .expect("params");
    let cert = params.self_signed(&key).expect("cert");
    Leaf {
        cert: cert.pem(),
        key: key.serialize_pem(),
        der: cert.der().to_vec(),
    }
}

fn leaf(name: &str) -> Leaf {
    leaf_with(&[name], &rcgen::PKCS_ECDSA_P256_SHA256)
}

fn ca() -> (String, Vec<u8>) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("cert");
    (cert.pem(), cert.der().to_vec())
}

/// The DER of the certificate `table` presents for `sni`.
fn served(table: &CertificateTable, sni: Option<&str>) -> Option<Vec<u8>> {
    table
        .resolve(sni)
        .and_then(|k| k.cert.first().map(|c| c.as_ref().to_vec()))
}

async fn certificates_admin_api(db: TestDb) {
    let s = start(db).await;
    let a = leaf("a.example.com");

    // Create with snis: the SNI entities exist, the certificate lists them.
    let (st, cert) = s
        .json(
            Method::POST,
            "/certificates",
            json!({"cert": a.cert, "key": a.key, "snis": ["a.example.com", "*.wild.test"], "tags": ["t1"]}),
        )
        .await;
    assert_eq!(st, 201, "{cert}");
    let id = cert["id"].as_str().unwrap().to_string();
    assert_eq!(cert["snis"], json!(["*.wild.test", "a.example.com"]));
    assert_eq!(cert["cert_alt"], Value::Null);
    assert_eq!(cert["key_alt"], Value::Null);
    let (st, snis) = s.get("/snis").await;
    assert_eq!(st, 200);
    assert_eq!(snis["data"].as_array().unwrap().len(), 2);
    assert_eq!(snis["data"][0]["certificate"]["id"], json!(id));

    // By id and by any of its SNI names.
    let (st, by_sni) = s.get("/certificates/a.example.com").await;
    assert_eq!(st, 200);
    assert_eq!(by_sni["id"], json!(id));
    assert_eq!(s.get("/certificates/nope.example.com").await.0, 404);
    assert_eq!(s.get("/snis/A.EXAMPLE.COM").await.0, 200);
    let (st, tagged) = s.get("/certificates?tags=t1").await;
    assert_eq!((st, tagged["data"][0]["id"].clone()), (200, json!(id)));

    // The TLS lookup follows the write.
    let table = s.gateway.certificates();
    assert_eq!(served(&table, Some("a.example.com")), Some(a.der.clone()));
    assert_eq!(served(&table, Some("x.wild.test")), Some(a.der.clone()));
    assert_eq!(served(&table, Some("other.test")), None);

    // A name another certificate holds is refused; so is a duplicate in the request.
    let b = leaf("b.example.com");
    let (st, err) = s
        .json(
            Method::POST,
            "/certificates",
            json!({"cert": b.cert, "key": b.key, "snis": ["a.example.com"]}),
        )
        .await;
    assert_eq!(st, 400, "{err}");
    assert_eq!(
        err["fields"]["snis"],
        json!(format!(
            "a.example.com already associated with existing certificate '{id}'"
        ))
    );
    let (st, err) = s
        .json(
            Method::POST,
            "/certificates",
            json!({"cert": b.cert, "key": b.key, "snis": ["b.example.com", "b.example.com"]}),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(
        err["fields"]["snis"][1],
        json!("duplicate SNI in request: b.example.com")
    );
    assert_eq!(
        s.get("/certificates").await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A key of another certificate, garbage PEM, missing fields.
    let (st, err) = s
        .json(
            Method::POST,
            "/certificates",
            json!({"cert": a.cert, "key": b.key}),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(err["code"], 2);
    assert_eq!(
        err["fields"]["@entity"],
        json!(["certificate does not match key"])
    );
    let (st, err) = s
        .json(
            Method::POST,
            "/certificates",
            json!({"cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "key": "nope"}),
        )
        .await;
    assert_eq!(st, 400);
    assert!(
        err["fields"]["cert"]
            .as_str()
            .unwrap()
            .starts_with("invalid certificate")
    );
    assert!(
        err["fields"]["key"]
            .as_str()
            .unwrap()
            .starts_with("invalid key")
    );
    let (st, err) = s.json(Method::POST, "/certificates", json!({})).await;
    assert_eq!(st, 400);
    assert_eq!(err["fields"]["cert"], json!("required field missing"));

    // Alternative pair: must be of another key type, and set with its key.
    let ed = leaf_with(&["a.example.com"], &rcgen::PKCS_ED25519);
    let same = leaf("a.example.com");
    let (st, err) = s
        .json(
            Method::PATCH,
            &format!("/certificates/{id}"),
            json!({"cert_alt": same.cert, "key_alt": same.key}),
        )
        .await;
    assert_eq!(st, 400);
    assert!(
        err["fields"]["@entity"][0]
            .as_str()
            .unwrap()
            .contains("need to have different type")
    );
    let (st, err) = s
        .json(
            Method::PATCH,
            &format!("/certificates/{id}"),
            json!({"cert_alt": ed.cert}),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(
        err["fields"]["@entity"],
        json!(["all or none of these fields must be set: 'cert_alt', 'key_alt'"])
    );
    let (st, patched) = s
        .json(
            Method::PATCH,
            &format!("/certificates/{id}"),
            json!({"cert_alt": ed.cert, "key_alt": ed.key}),
        )
        .await;
    assert_eq!(st, 200, "{patched}");
    assert_eq!(patched["snis"].as_array().unwrap().len(), 2, "snis kept");

    // PATCH snis replaces the set; the nested collection sees it.
    let (st, patched) = s
        .json(
            Method::PATCH,
            "/certificates/a.example.com",
            json!({"snis": ["a.example.com", "example.*"]}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(patched["snis"], json!(["a.example.com", "example.*"]));
    let (st, nested) = s.get(&format!("/certificates/{id}/snis")).await;
    assert_eq!(st, 200);
    assert_eq!(nested["data"].as_array().unwrap().len(), 2);

    // SNIs on their own: nested create, 409 on a taken name, wildcard rules.
    let (st, sni) = s
        .json(
            Method::POST,
            &format!("/certificates/{id}/snis"),
            json!({"name": "c.example.com"}),
        )
        .await;
    assert_eq!(st, 201, "{sni}");
    assert_eq!(sni["certificate"]["id"], json!(id));
    let (st, err) = s
        .json(
            Method::POST,
            "/snis",
            json!({"name": "c.example.com", "certificate": {"id": id}}),
        )
        .await;
    assert_eq!(st, 409);
    assert_eq!(err["code"], 5);
    assert_eq!(
        err["message"],
        json!("UNIQUE violation detected on '{name=\"c.example.com\"}'")
    );
    for (name, msg) in [
        ("*.a.*", "only one wildcard must be specified"),
        (
            "a.*.com",
            "wildcard must be leftmost or rightmost character",
        ),
    ] {
        let (st, err) = s
            .json(
                Method::POST,
                "/snis",
                json!({"name": name, "certificate": {"id": id}}),
            )
            .await;
        assert_eq!(st, 400, "{name}");
        assert_eq!(err["fields"]["name"], json!(msg));
    }
    let (st, err) = s
        .json(Method::POST, "/snis", json!({"name": "d.example.com"}))
        .await;
    assert_eq!(st, 400);
    assert_eq!(
        err["fields"]["certificate"],
        json!("required field missing")
    );
    let (_, cert) = s.get(&format!("/certificates/{id}")).await;
    assert_eq!(
        cert["snis"],
        json!(["a.example.com", "c.example.com", "example.*"])
    );

    // PUT by a new SNI name creates a certificate with that SNI.
    let (st, put) = s
        .json(
            Method::PUT,
            "/certificates/b.example.com",
            json!({"cert": b.cert, "key": b.key}),
        )
        .await;
    assert_eq!(st, 200, "{put}");
    assert_eq!(put["snis"], json!(["b.example.com"]));
    assert_eq!(
        served(&s.gateway.certificates(), Some("b.example.com")),
        Some(b.der.clone())
    );

    // Delete by id removes its SNIs too.
    let (st, _) = s
        .json(Method::DELETE, &format!("/certificates/{id}"), json!({}))
        .await;
    assert_eq!(st, 204);
    assert_eq!(s.get("/snis/c.example.com").await.0, 404);
    assert_eq!(s.get("/snis").await.1["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        served(&s.gateway.certificates(), Some("a.example.com")),
        None
    );
}
on_both!(admin_api, certificates_admin_api);

async fn ca_certificates_admin_api(db: TestDb) {
    let s = start(db).await;
    let (pem, der) = ca();
    let (st, created) = s
        .json(
            Method::POST,
            "/ca_certificates",
            json!({"cert": pem, "tags": ["ca"]}),
        )
        .await;
    assert_eq!(st, 201, "{created}");
    assert_eq!(
        created["cert_digest"],
        json!(hex::encode(Sha256::digest(&der)))
    );
    let (st, err) = s
        .json(Method::POST, "/ca_certificates", json!({"cert": pem}))
        .await;
    assert_eq!(st, 409);
    assert_eq!(err["fields"]["cert_digest"], created["cert_digest"]);

    // A leaf is no CA; two certificates at once are refused.
    let l = leaf("leaf.test");
    let (st, err) = s
        .json(Method::POST, "/ca_certificates", json!({"cert": l.cert}))
        .await;
    assert_eq!(st, 400);
    assert!(
        err["fields"]["cert"]
            .as_str()
            .unwrap()
            .contains("\"CA\" basic constraint")
    );
    let (other, _) = ca();
    let (st, err) = s
        .json(
            Method::POST,
            "/ca_certificates",
            json!({"cert": format!("{pem}{other}")}),
        )
        .await;
    assert_eq!(st, 400);
    assert_eq!(
        err["fields"]["cert"],
        json!("please submit only one certificate at a time")
    );
    let id = created["id"].as_str().unwrap();
    assert_eq!(s.get(&format!("/ca_certificates/{id}")).await.0, 200);
    let (_, tags) = s.get("/tags/ca").await;
    assert_eq!(tags["data"][0]["entity_name"], json!("ca_certificates"));
    let (st, _) = s
        .json(Method::DELETE, &format!("/ca_certificates/{id}"), json!({}))
        .await;
    assert_eq!(st, 204);
    assert_eq!(s.get(&format!("/ca_certificates/{id}")).await.0, 404);
}
on_both!(ca_certificates, ca_certificates_admin_api);

#[tokio::test]
async fn lookup_precedence_and_default() {
    let exact = leaf("www.example.com");
    let prefix = leaf("*.example.com");
    let suffix = leaf("www.example.*");
    let fallback = leaf("default.test");
    let db = TestDb::sqlite().await;
    db.migrate(&[portcullis_gateway::migrations()])
        .await
        .expect("migrate");
    let options = GatewayOptions {
        default_certificate: Some(
            CertifiedPair::from_pem(&fallback.cert, &fallback.key).expect("default"),
        ),
        ..GatewayOptions::default()
    };
    let handle = (*db).clone();
    let s = start_with(handle, options, Some(db)).await;
    for (l, sni) in [
        (&exact, "www.example.com"),
        (&prefix, "*.example.com"),
        (&suffix, "www.example.*"),
    ] {
        let (st, body) = s
            .json(
                Method::POST,
                "/certificates",
                json!({"cert": l.cert, "key": l.key, "snis": [sni]}),
            )
            .await;
        assert_eq!(st, 201, "{body}");
    }
    let t = s.gateway.certificates();
    assert_eq!(served(&t, Some("www.example.com")), Some(exact.der.clone()));
    assert_eq!(
        served(&t, Some("WWW.Example.com.")),
        Some(exact.der.clone())
    );
    assert_eq!(
        served(&t, Some("api.example.com")),
        Some(prefix.der.clone())
    );
    assert_eq!(
        served(&t, Some("www.example.org")),
        Some(suffix.der.clone())
    );
    // `*.example.com` covers one label only.
    assert_eq!(
        served(&t, Some("a.b.example.com")),
        Some(fallback.der.clone())
    );
    assert_eq!(served(&t, None), Some(fallback.der.clone()));

    // The `*` SNI overrides the default certificate.
    let star = leaf("star.test");
    let (st, _) = s
        .json(
            Method::POST,
            "/certificates",
            json!({"cert": star.cert, "key": star.key, "snis": ["*"]}),
        )
        .await;
    assert_eq!(st, 201);
    let t = s.gateway.certificates();
    assert_eq!(served(&t, Some("unknown.test")), Some(star.der.clone()));
    assert_eq!(served(&t, Some("www.example.com")), Some(exact.der));
}

#[tokio::test]
async fn declarative_certificates() {
    let a = leaf("decl.example.com");
    let (ca_pem, _) = ca();
    let indent = |pem: &str| {
        pem.lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    };
    let yaml = format!(
        "_format_version: \"3.0\"\ncertificates:\n  - cert: |\n{}    key: |\n{}    snis:\n      - name: decl.example.com\n      - name: \"*.decl.test\"\nca_certificates:\n  - cert: |\n{}",
        indent(&a.cert),
        indent(&a.key),
        indent(&ca_pem),
    );
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("kong.yml");
    std::fs::write(&path, yaml).expect("write");
    let gw = Gateway::from_declarative(Some(&path), GatewayOptions::default())
        .await
        .expect("load");
    let t = gw.certificates();
    assert_eq!(served(&t, Some("decl.example.com")), Some(a.der.clone()));
    assert_eq!(served(&t, Some("x.decl.test")), Some(a.der));
    let s = common::serve_gateway(gw, None).await;
    let (_, certs) = s.get("/certificates").await;
    assert_eq!(
        certs["data"][0]["snis"],
        json!(["*.decl.test", "decl.example.com"])
    );
    assert_eq!(
        s.get("/ca_certificates").await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Read-only in DB-less mode.
    let (st, err) = s
        .json(Method::POST, "/snis", json!({"name": "x.test"}))
        .await;
    assert_eq!(st, 405);
    assert_eq!(
        err["message"],
        json!("cannot create 'snis' entities when not using a database")
    );

    // A bad key is reported where it sits in the file.
    let bad = format!(
        "_format_version: \"3.0\"\ncertificates:\n  - cert: |\n{}    key: nope\n",
        indent(&leaf("x.test").cert)
    );
    let err = portcullis_gateway::declarative::compile(
        portcullis_gateway::declarative::parse(&bad).expect("yaml"),
    )
    .expect_err("invalid");
    assert!(err.to_string().contains("certificates[1]"), "{err}");
}

/// Polls `check` until it holds; the deadline only bounds a failing test.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what} never happened"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn certificates_converge_across_nodes() {
    let Some(url) = TestDb::postgres_database_url().await else {
        return;
    };
    let direct = Db::connect(&url).await.expect("db");
    direct
        .migrate(&[portcullis_gateway::migrations()])
        .await
        .expect("migrate");
    let node = |url: String| async move {
        let db = Db::connect(&url).await.expect("db");
        start_with(db, GatewayOptions::default(), None).await
    };
    let a: Stack = node(url.clone()).await;
    let b: Stack = node(url).await;
    let l = leaf("cluster.example.com");
    let (st, cert) = a
        .json(
            Method::POST,
            "/certificates",
            json!({"cert": l.cert, "key": l.key, "snis": ["cluster.example.com"]}),
        )
        .await;
    assert_eq!(st, 201);
    eventually("node B serving the new certificate", || {
        served(&b.gateway.certificates(), Some("cluster.example.com")) == Some(l.der.clone())
    })
    .await;
    let id = cert["id"].as_str().unwrap();
    let (st, _) = a
        .json(Method::DELETE, &format!("/certificates/{id}"), json!({}))
        .await;
    assert_eq!(st, 204);
    eventually("node B dropping the certificate", || {
        served(&b.gateway.certificates(), Some("cluster.example.com")).is_none()
    })
    .await;
}

#[tokio::test]
async fn multipart_certificate_upload() {
    let s = start(TestDb::sqlite().await).await;
    let l = leaf("multi.example.com");
    let boundary = "b0undary";
    let mut body = String::new();
    for (name, value, file) in [
        ("cert", l.cert.as_str(), true),
        ("key", l.key.as_str(), true),
        ("snis[]", "multi.example.com", false),
        ("tags", "uploaded", false),
    ] {
        let filename = if file { "; filename=\"x.pem\"" } else { "" };
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{filename}\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    let res = s
        .http
        .post(format!("{}/certificates", s.admin))
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let (st, cert) = common::status_json(res).await;
    assert_eq!(st, 201, "{cert}");
    assert_eq!(cert["snis"], json!(["multi.example.com"]));
    assert_eq!(cert["tags"], json!(["uploaded"]));
    assert_eq!(cert["cert"], json!(l.cert));
    let res = s
        .http
        .post(format!("{}/services", s.admin))
        .header("content-type", "multipart/form-data; boundary=zz")
        .body("not multipart")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

/// Kong names a certificate by any of its SNIs, nested endpoints included, and a service's
/// `client_certificate` holds on to it.
async fn certificates_by_sni_name(db: TestDb) {
    let s = start(db).await;
    let a = leaf("named.test");
    let (st, cert) = s
        .json(
            Method::POST,
            "/certificates",
            json!({"cert": a.cert, "key": a.key, "snis": ["named.test"]}),
        )
        .await;
    assert_eq!(st, 201, "{cert}");
    let id = cert["id"].as_str().unwrap().to_string();

    // GET by SNI name, in any case.
    let (st, got) = s.get("/certificates/NAMED.test").await;
    assert_eq!(st, 200, "{got}");
    assert_eq!(got["id"], json!(id));

    // Nested: list, create and read the SNIs of the certificate named by an SNI.
    let (st, list) = s.get("/certificates/named.test/snis").await;
    assert_eq!(st, 200, "{list}");
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["name"], "named.test");
    let (st, sni) = s
        .json(
            Method::POST,
            "/certificates/named.test/snis",
            json!({"name": "second.test"}),
        )
        .await;
    assert_eq!(st, 201, "{sni}");
    assert_eq!(sni["certificate"]["id"], json!(id));
    let (st, got) = s.get("/certificates/second.test/snis/named.test").await;
    assert_eq!(st, 200, "{got}");
    let (st, got) = s.get(&format!("/certificates/{id}/snis/second.test")).await;
    assert_eq!(st, 200, "{got}");
    let (st, got) = s.get("/certificates/second.test").await;
    assert_eq!(
        (st, got["snis"].clone()),
        (200, json!(["named.test", "second.test"]))
    );
    let (st, _) = s.get("/certificates/nobody.test/snis").await;
    assert_eq!(st, 404);

    // A service presenting it: the certificate cannot be deleted while in use; an unknown
    // one is refused; only https/tls services take one.
    let (st, svc) = s
        .json(
            Method::POST,
            "/services",
            json!({"name": "mtls", "url": "https://upstream.test", "client_certificate": {"id": id}}),
        )
        .await;
    assert_eq!(st, 201, "{svc}");
    assert_eq!(svc["client_certificate"]["id"], json!(id));
    let res = s
        .http
        .delete(format!("{}/certificates/named.test", s.admin))
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status().as_u16(), 400);
    let missing = "00000000-0000-4000-8000-000000000001";
    let (st, body) = s
        .json(
            Method::POST,
            "/services",
            json!({"url": "https://other.test", "client_certificate": {"id": missing}}),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["code"], 4, "{body}");
    let (st, body) = s
        .json(
            Method::POST,
            "/services",
            json!({"url": "http://plain.test", "client_certificate": {"id": id}}),
        )
        .await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["fields"]["client_certificate"], "value must be null");
    let (st, _) = s
        .json(
            Method::PATCH,
            "/services/mtls",
            json!({"client_certificate": null}),
        )
        .await;
    assert_eq!(st, 200);
    let res = s
        .http
        .delete(format!("{}/certificates/named.test", s.admin))
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status().as_u16(), 204);
}
on_both!(by_sni_name, certificates_by_sni_name);
