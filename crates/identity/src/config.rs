//! `kratos.yml`: read with Kratos's environment overrides, legacy keys renamed, validated
//! against Kratos's own configuration schema (embedded verbatim, Apache-2.0), defaults filled
//! from it, then compiled into [`IdentityConfig`] — URLs parsed, durations converted, identity
//! schemas loaded and compiled — so nothing is parsed per request.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use portcullis_config::{ConfigError, Document};
use portcullis_core::Secret;
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::api::cors::Cors;
use crate::cookie::{CookieOptions, SameSite};
use crate::courier::CourierConfig;
use crate::courier::smtp::SmtpConfig;
use crate::courier::template::Overrides;
use crate::error::IdentityError;
use crate::hash::{Algorithm, Argon2Config, parse_byte_size_kib};
use crate::schema::{IdentitySchema, SchemaError};
use crate::selfservice::hook::WebHooks;
use crate::selfservice::strategy::password::breach::{BreachConfig, OfflineList};
use crate::selfservice::strategy::password::throttle::BruteForceConfig;
use crate::selfservice::strategy::password::validator::PasswordPolicy;
use crate::session::tokenizer::Tokenizer;

/// Kratos's `embedx/config.schema.json`.
const CONFIG_SCHEMA: &str = include_str!("../schema/kratos.config.schema.json");

/// The parsed configuration schema (embedded, so parsing cannot fail at run time unless the
/// file was damaged at build time, which the tests catch).
static SCHEMA: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(CONFIG_SCHEMA).unwrap_or(Value::Bool(true)));

/// The schema compiled once.
static VALIDATOR: LazyLock<Result<jsonschema::Validator, String>> =
    LazyLock::new(|| portcullis_config::compile_schema(&SCHEMA));

/// A compiled, immutable identity server configuration.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    pub(crate) origin: String,
    pub(crate) dev: bool,
    dsn: Option<String>,
    pub(crate) public_base_url: Url,
    pub(crate) admin_base_url: Url,
    public_port: u16,
    admin_port: u16,
    pub(crate) default_return_url: Url,
    pub(crate) allowed_return_urls: Vec<String>,
    pub(crate) login: FlowConfig,
    pub(crate) registration: FlowConfig,
    pub(crate) registration_enabled: bool,
    pub(crate) registration_session_hook: bool,
    pub(crate) registration_profile_first: bool,
    pub(crate) registration_show_verification_ui: bool,
    pub(crate) login_revoke_active_sessions: bool,
    pub(crate) login_require_verified_address: bool,
    pub(crate) logout_return_url: Url,
    pub(crate) error_ui_url: Url,
    pub(crate) session_lifespan: time::Duration,
    pub(crate) session_cookie_name: String,
    pub(crate) session_cookie_persistent: bool,
    pub(crate) session_cookie: CookieOptions,
    pub(crate) csrf_cookie: CookieOptions,
    pub(crate) cookie_secrets: Vec<Secret<String>>,
    pub(crate) password_enabled: bool,
    pub(crate) password_policy: PasswordPolicy,
    pub(crate) hasher: Algorithm,
    pub(crate) schemas: Arc<Schemas>,
    pub(crate) cors: Option<Cors>,
    pub(crate) courier: CourierConfig,
    pub(crate) verification: FlowConfig,
    pub(crate) verification_enabled: bool,
    pub(crate) recovery: FlowConfig,
    pub(crate) recovery_enabled: bool,
    pub(crate) settings: FlowConfig,
    pub(crate) privileged_session_max_age: time::Duration,
    pub(crate) code: CodeConfig,
    pub(crate) breach: BreachConfig,
    pub(crate) brute_force: BruteForceConfig,
    pub(crate) link: LinkConfig,
    pub(crate) web_hooks: Arc<WebHooks>,
    /// `session.whoami.tokenizer.templates`.
    pub(crate) tokenizer: Arc<Tokenizer>,
}

/// `selfservice.methods.link`.
#[derive(Debug, Clone)]
pub(crate) struct LinkConfig {
    pub enabled: bool,
    pub lifespan: time::Duration,
    /// `config.base_url`: where e-mailed links point (default `serve.public.base_url`).
    pub base_url: Option<Url>,
}

/// `selfservice.methods.code`.
#[derive(Debug, Clone)]
pub(crate) struct CodeConfig {
    pub enabled: bool,
    pub lifespan: time::Duration,
    pub max_submissions: i64,
}

/// Settings of one self-service flow kind.
#[derive(Debug, Clone)]
pub(crate) struct FlowConfig {
    pub ui_url: Url,
    pub lifespan: time::Duration,
    /// `after.password.default_browser_return_url`, else `after.default_browser_return_url`.
    pub after_return_url: Option<Url>,
    /// `notify_unknown_recipients` (verification and recovery).
    pub notify_unknown_recipients: bool,
    /// `use: link` (verification and recovery) with the link method enabled.
    pub use_link: bool,
}

/// The identity schemas, compiled.
#[derive(Debug)]
pub struct Schemas {
    default_id: String,
    list: Vec<(String, String, IdentitySchema)>,
}

impl Schemas {
    /// The default schema (`identity.default_schema_id`).
    pub fn default_schema(&self) -> Option<&IdentitySchema> {
        self.get(&self.default_id)
    }

    /// The schema with `id`.
    pub fn get(&self, id: &str) -> Option<&IdentitySchema> {
        self.list
            .iter()
            .find(|(i, _, _)| i == id)
            .map(|(_, _, s)| s)
    }

    /// All schemas in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &IdentitySchema> {
        self.list.iter().map(|(_, _, s)| s)
    }
}

// ---- raw config (serde, only the keys this server uses) -------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Raw {
    dsn: Option<String>,
    dev: Option<bool>,
    serve: RawServe,
    selfservice: RawSelfservice,
    session: RawSession,
    cookies: RawCookies,
    secrets: RawSecrets,
    hashers: RawHashers,
    identity: RawIdentity,
    courier: RawCourier,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawCourier {
    smtp: RawSmtp,
    templates: Value,
    template_override_path: Option<String>,
    message_retries: Option<u32>,
    worker: RawWorker,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSmtp {
    connection_uri: Option<String>,
    from_address: Option<String>,
    from_name: Option<String>,
    headers: BTreeMap<String, String>,
    local_name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawWorker {
    pull_count: Option<i64>,
    pull_wait: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawServe {
    public: RawListener,
    admin: RawListener,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawListener {
    base_url: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    cors: Option<RawCors>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawCors {
    enabled: bool,
    allowed_origins: Option<Vec<String>>,
    allowed_methods: Option<Vec<String>>,
    allowed_headers: Option<Vec<String>>,
    exposed_headers: Option<Vec<String>>,
    allow_credentials: Option<bool>,
    max_age: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSelfservice {
    default_browser_return_url: Option<String>,
    allowed_return_urls: Vec<String>,
    methods: RawMethods,
    flows: RawFlows,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawMethods {
    password: RawPasswordMethod,
    code: RawCodeMethod,
    link: RawLinkMethod,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawLinkMethod {
    enabled: Option<bool>,
    config: RawLinkConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawLinkConfig {
    lifespan: Option<String>,
    base_url: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawCodeMethod {
    enabled: Option<bool>,
    config: RawCodeConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawCodeConfig {
    lifespan: Option<String>,
    max_submissions: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawPasswordMethod {
    enabled: Option<bool>,
    config: RawPasswordConfig,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawPasswordConfig {
    min_password_length: Option<usize>,
    identifier_similarity_check_enabled: Option<bool>,
    haveibeenpwned_enabled: Option<bool>,
    haveibeenpwned_host: Option<String>,
    max_breaches: Option<u64>,
    ignore_network_errors: Option<bool>,
}

// ---- Portcullis extension keys (taken out before Kratos's schema validates the file) -------

/// Where the extension keys live.
const EXT_BREACHED_PASSWORDS_FILE: &str =
    "/selfservice/methods/password/config/breached_passwords_file";
const EXT_BRUTE_FORCE: &str = "/selfservice/flows/login/brute_force";

/// The extension keys of a file.
#[derive(Debug, Default)]
struct Extensions {
    breached_passwords_file: Option<Value>,
    brute_force: Option<Value>,
}

impl Extensions {
    /// Removes the extension keys from `value`, so the rest validates against Kratos's schema.
    fn take(value: &mut Value) -> Self {
        Extensions {
            breached_passwords_file: take_pointer(value, EXT_BREACHED_PASSWORDS_FILE),
            brute_force: take_pointer(value, EXT_BRUTE_FORCE),
        }
    }
}

fn take_pointer(value: &mut Value, pointer: &str) -> Option<Value> {
    let (parent, key) = pointer.rsplit_once('/')?;
    value.pointer_mut(parent)?.as_object_mut()?.remove(key)
}

/// `selfservice.flows.login.brute_force` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct RawBruteForce {
    enabled: Option<bool>,
    max_attempts: Option<u32>,
    max_attempts_per_ip: Option<u32>,
    lockout: Option<String>,
    max_lockout: Option<String>,
    reset_after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawFlows {
    login: RawFlow,
    registration: RawFlow,
    logout: RawFlow,
    error: RawFlow,
    verification: RawFlow,
    recovery: RawFlow,
    settings: RawFlow,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawFlow {
    enabled: Option<bool>,
    ui_url: Option<String>,
    lifespan: Option<String>,
    after: Value,
    #[serde(rename = "use")]
    method: Option<String>,
    notify_unknown_recipients: Option<bool>,
    privileged_session_max_age: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSession {
    lifespan: Option<String>,
    cookie: RawSessionCookie,
    whoami: RawWhoami,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawWhoami {
    tokenizer: RawTokenizer,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawTokenizer {
    templates: Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSessionCookie {
    name: Option<String>,
    domain: Option<String>,
    path: Option<String>,
    persistent: Option<bool>,
    secure: Option<Value>,
    same_site: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawCookies {
    domain: Option<String>,
    path: Option<String>,
    secure: Option<Value>,
    same_site: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSecrets {
    default: Vec<String>,
    cookie: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawHashers {
    algorithm: Option<String>,
    argon2: RawArgon2,
    bcrypt: RawBcrypt,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawBcrypt {
    cost: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawArgon2 {
    memory: Option<String>,
    iterations: Option<u32>,
    parallelism: Option<u32>,
    salt_length: Option<usize>,
    key_length: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawIdentity {
    default_schema_id: Option<String>,
    schemas: Vec<RawSchema>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSchema {
    id: String,
    url: String,
}

// ---- loading -------------------------------------------------------------------------------

impl IdentityConfig {
    /// Loads `kratos.yml` from `path`, applies Kratos's environment overrides (`DSN`,
    /// `SERVE_PUBLIC_BASE_URL`, ...), validates and compiles it. `dev` is `kratos serve --dev`:
    /// cookies are not `Secure` unless the file says so.
    pub fn load(path: &Path, dev: bool) -> Result<Self, IdentityError> {
        Self::load_with_env(path, dev, std::env::vars())
    }

    /// [`IdentityConfig::load`] with the environment given explicitly.
    pub fn load_with_env(
        path: &Path,
        dev: bool,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, IdentityError> {
        let mut doc = Document::from_file(path)?;
        let base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        normalize_legacy(&mut doc.value);
        let used = doc.apply_env(&SCHEMA, vars);
        if !used.is_empty() {
            tracing::info!(variables = ?used, "kratos.yml overridden from the environment");
        }
        Self::compile(doc, &base_dir, dev)
    }

    /// Compiles a configuration built in code (no environment overrides); `origin` names it in
    /// errors and relative `file://` schema URLs resolve against `base_dir`.
    pub fn from_value(
        value: Value,
        origin: &str,
        base_dir: &Path,
        dev: bool,
    ) -> Result<Self, IdentityError> {
        let mut doc = Document::from_value(value, origin);
        normalize_legacy(&mut doc.value);
        Self::compile(doc, base_dir, dev)
    }

    fn compile(mut doc: Document, base_dir: &Path, dev: bool) -> Result<Self, IdentityError> {
        let extensions = Extensions::take(&mut doc.value);
        let validator = VALIDATOR.as_ref().map_err(|e| ConfigError {
            origin: "built-in kratos config schema".into(),
            line: None,
            column: None,
            path: String::new(),
            message: e.clone(),
        })?;
        doc.validate_with(validator)
            .map_err(IdentityError::Invalid)?;
        // Kratos ≥ 1.2 defaults `registration.style` to `profile_first`; files written for
        // older versions (the tutorial's, our own `up`) expect the one-step form, so the
        // two-step form is used only when the file asks for it.
        let registration_profile_first = doc
            .value
            .pointer("/selfservice/flows/registration/style")
            .and_then(Value::as_str)
            == Some("profile_first");
        portcullis_config::fill_defaults(&mut doc.value, &SCHEMA);
        let raw: Raw = serde_json::from_value(doc.value.clone())
            .map_err(|e| doc.error_at("", format!("unexpected value: {e}")))?;
        let dev = dev || raw.dev.unwrap_or(false);

        let url_at = |pointer: &str, value: &str| -> Result<Url, IdentityError> {
            Url::parse(value).map_err(|e| {
                doc.error_at(pointer, format!("invalid URL {value:?}: {e}"))
                    .into()
            })
        };
        let public_port = raw.serve.public.port.unwrap_or(4433);
        let admin_port = raw.serve.admin.port.unwrap_or(4434);
        let public_base_url = match &raw.serve.public.base_url {
            Some(u) => url_at("/serve/public/base_url", u)?,
            None => url_at(
                "/serve/public",
                &default_base(raw.serve.public.host.as_deref(), public_port),
            )?,
        };
        let admin_base_url = match &raw.serve.admin.base_url {
            Some(u) => url_at("/serve/admin/base_url", u)?,
            None => url_at(
                "/serve/admin",
                &default_base(raw.serve.admin.host.as_deref(), admin_port),
            )?,
        };
        let ss = &raw.selfservice;
        let default_return_url = url_at(
            "/selfservice/default_browser_return_url",
            ss.default_browser_return_url.as_deref().unwrap_or_default(),
        )?;
        let flow = |name: &str, f: &RawFlow| -> Result<FlowConfig, IdentityError> {
            let pointer = format!("/selfservice/flows/{name}");
            // Kratos's fallback pages, as the schema's defaults (absent parents get none).
            let fallback = format!("https://www.ory.com/kratos/docs/fallback/{name}");
            let ui_url = url_at(
                &format!("{pointer}/ui_url"),
                f.ui_url.as_deref().unwrap_or(&fallback),
            )?;
            let lifespan =
                parse_duration(f.lifespan.as_deref().unwrap_or("1h")).ok_or_else(|| {
                    IdentityError::from(
                        doc.error_at(&format!("{pointer}/lifespan"), "invalid duration"),
                    )
                })?;
            let after = f
                .after
                .pointer("/password/default_browser_return_url")
                .or_else(|| f.after.pointer("/default_browser_return_url"))
                .and_then(Value::as_str);
            let after_return_url = after
                .map(|u| url_at(&format!("{pointer}/after/default_browser_return_url"), u))
                .transpose()?;
            let link_enabled = ss.methods.link.enabled.unwrap_or(false);
            let use_link = f.method.as_deref() == Some("link");
            if use_link && !link_enabled {
                tracing::warn!(
                    flow = name,
                    "selfservice.flows.{name}.use is link but selfservice.methods.link.enabled is false; the code method is used"
                );
            }
            Ok(FlowConfig {
                ui_url,
                lifespan,
                after_return_url,
                notify_unknown_recipients: f.notify_unknown_recipients.unwrap_or(false),
                use_link: use_link && link_enabled,
            })
        };
        let login = flow("login", &ss.flows.login)?;
        let registration = flow("registration", &ss.flows.registration)?;
        let verification = flow("verification", &ss.flows.verification)?;
        let recovery = flow("recovery", &ss.flows.recovery)?;
        let settings = flow("settings", &ss.flows.settings)?;
        let privileged_session_max_age = parse_duration(
            ss.flows
                .settings
                .privileged_session_max_age
                .as_deref()
                .unwrap_or("1h"),
        )
        .ok_or_else(|| {
            IdentityError::from(doc.error_at(
                "/selfservice/flows/settings/privileged_session_max_age",
                "invalid duration",
            ))
        })?;
        let code_method = &ss.methods.code;
        let code = CodeConfig {
            enabled: code_method.enabled.unwrap_or(true),
            lifespan: parse_duration(code_method.config.lifespan.as_deref().unwrap_or("1h"))
                .ok_or_else(|| {
                    IdentityError::from(doc.error_at(
                        "/selfservice/methods/code/config/lifespan",
                        "invalid duration",
                    ))
                })?,
            max_submissions: code_method.config.max_submissions.unwrap_or(5).max(1),
        };
        let link_method = &ss.methods.link;
        let link = LinkConfig {
            enabled: link_method.enabled.unwrap_or(false),
            lifespan: parse_duration(link_method.config.lifespan.as_deref().unwrap_or("1h"))
                .ok_or_else(|| {
                    IdentityError::from(doc.error_at(
                        "/selfservice/methods/link/config/lifespan",
                        "invalid duration",
                    ))
                })?,
            base_url: link_method
                .config
                .base_url
                .as_deref()
                .filter(|u| !u.is_empty())
                .map(|u| url_at("/selfservice/methods/link/config/base_url", u))
                .transpose()?,
        };
        let error_ui_url = url_at(
            "/selfservice/flows/error/ui_url",
            ss.flows
                .error
                .ui_url
                .as_deref()
                .unwrap_or("https://www.ory.com/kratos/docs/fallback/error"),
        )?;
        let logout_return_url = match ss
            .flows
            .logout
            .after
            .pointer("/default_browser_return_url")
            .and_then(Value::as_str)
        {
            Some(u) => url_at(
                "/selfservice/flows/logout/after/default_browser_return_url",
                u,
            )?,
            None => default_return_url.clone(),
        };
        let registration_hooks = after_hooks(
            "registration",
            &ss.flows.registration.after,
            &["session", "show_verification_ui", "web_hook"],
        );
        let login_hooks = after_hooks(
            "login",
            &ss.flows.login.after,
            &[
                "revoke_active_sessions",
                "require_verified_address",
                "web_hook",
            ],
        );
        let registration_session_hook = registration_hooks.iter().any(|h| h == "session");

        let session_lifespan = parse_duration(raw.session.lifespan.as_deref().unwrap_or("24h"))
            .ok_or_else(|| {
                IdentityError::from(doc.error_at("/session/lifespan", "invalid duration"))
            })?;
        let secure_of = |v: &Option<Value>| -> Option<bool> {
            match v {
                Some(Value::Bool(b)) => Some(*b),
                Some(Value::String(s)) => s.parse().ok(),
                _ => None,
            }
        };
        let cookies = &raw.cookies;
        let same_site = |s: &Option<String>| s.as_deref().and_then(SameSite::parse);
        let csrf_cookie = CookieOptions {
            path: cookies.path.clone().unwrap_or_else(|| "/".into()),
            domain: cookies.domain.clone().filter(|d| !d.is_empty()),
            secure: secure_of(&cookies.secure).unwrap_or(!dev),
            same_site: same_site(&cookies.same_site).unwrap_or(SameSite::Lax),
        };
        let sc = &raw.session.cookie;
        let session_cookie = CookieOptions {
            path: sc.path.clone().unwrap_or_else(|| csrf_cookie.path.clone()),
            domain: sc
                .domain
                .clone()
                .filter(|d| !d.is_empty())
                .or_else(|| csrf_cookie.domain.clone()),
            secure: secure_of(&sc.secure).unwrap_or(csrf_cookie.secure),
            same_site: same_site(&sc.same_site).unwrap_or(csrf_cookie.same_site),
        };
        let cookie_secrets: Vec<Secret<String>> = if raw.secrets.cookie.is_empty() {
            raw.secrets
                .default
                .iter()
                .cloned()
                .map(Secret::new)
                .collect()
        } else {
            raw.secrets
                .cookie
                .iter()
                .cloned()
                .map(Secret::new)
                .collect()
        };

        let hasher = hasher_config(&raw.hashers, &doc)?;
        let pw = &ss.methods.password;
        let password_policy = PasswordPolicy {
            min_length: pw.config.min_password_length.unwrap_or(8),
            identifier_similarity: pw
                .config
                .identifier_similarity_check_enabled
                .unwrap_or(true),
            max_length: hasher.max_password_bytes(),
        };

        let breach = breach_config(&pw.config, &extensions, &doc, base_dir)?;
        let brute_force = brute_force_config(&extensions, &doc)?;
        let schemas = load_schemas(&raw.identity, &doc, base_dir)?;
        let web_hooks = WebHooks::compile(&doc.value, base_dir)
            .map_err(|(pointer, e)| IdentityError::from(doc.error_at(&pointer, e.to_string())))?;
        let courier = courier_config(&raw.courier, &doc, base_dir)?;
        let tokenizer = Tokenizer::compile(&raw.session.whoami.tokenizer.templates, base_dir)
            .map_err(|(at, e)| {
                IdentityError::from(
                    doc.error_at(&format!("/session/whoami/tokenizer/templates{at}"), e),
                )
            })?;

        Ok(Self {
            origin: doc.origin().to_string(),
            dev,
            dsn: raw.dsn.as_deref().map(normalize_dsn),
            public_base_url,
            admin_base_url,
            public_port,
            admin_port,
            default_return_url,
            allowed_return_urls: ss.allowed_return_urls.clone(),
            login,
            registration,
            registration_enabled: ss.flows.registration.enabled.unwrap_or(true),
            registration_session_hook,
            registration_profile_first,
            registration_show_verification_ui: registration_hooks
                .iter()
                .any(|h| h == "show_verification_ui"),
            login_revoke_active_sessions: login_hooks.iter().any(|h| h == "revoke_active_sessions"),
            login_require_verified_address: login_hooks
                .iter()
                .any(|h| h == "require_verified_address"),
            logout_return_url,
            error_ui_url,
            session_lifespan,
            session_cookie_name: sc
                .name
                .clone()
                .unwrap_or_else(|| "ory_kratos_session".into()),
            session_cookie_persistent: sc.persistent.unwrap_or(true),
            session_cookie,
            csrf_cookie,
            cookie_secrets,
            password_enabled: pw.enabled.unwrap_or(true),
            password_policy,
            hasher,
            schemas: Arc::new(schemas),
            cors: raw
                .serve
                .public
                .cors
                .as_ref()
                .filter(|c| c.enabled)
                .map(cors),
            courier,
            verification,
            verification_enabled: ss.flows.verification.enabled.unwrap_or(false),
            recovery,
            recovery_enabled: ss.flows.recovery.enabled.unwrap_or(false),
            settings,
            privileged_session_max_age,
            code,
            breach,
            brute_force,
            link,
            web_hooks: Arc::new(web_hooks),
            tokenizer: Arc::new(tokenizer),
        })
    }

    /// The database URL for `portcullis_db::Db::connect` (Kratos-only DSN parameters such as
    /// `_fk` or `max_conns` removed), or `None` when the file names none.
    pub fn dsn(&self) -> Option<String> {
        self.dsn.clone()
    }

    /// `serve.public.port` (default 4433).
    pub fn public_port(&self) -> u16 {
        self.public_port
    }

    /// `serve.admin.port` (default 4434).
    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// `serve.public.base_url`.
    pub fn public_base_url(&self) -> &Url {
        &self.public_base_url
    }

    /// `serve.admin.base_url`.
    pub fn admin_base_url(&self) -> &Url {
        &self.admin_base_url
    }

    /// Whether development mode (insecure cookies) is on.
    pub fn dev(&self) -> bool {
        self.dev
    }

    /// The compiled identity schemas.
    pub fn schemas(&self) -> &Schemas {
        &self.schemas
    }

    /// Where the configuration came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The same configuration with cookie secrets supplied (used when the file has none and
    /// generated secrets are taken from the store).
    pub(crate) fn with_cookie_secret(mut self, secret: Secret<String>) -> Self {
        self.cookie_secrets = vec![secret];
        self
    }
}

/// Renames keys older Kratos versions used, so older files (the tutorial's is v0.7) load
/// unchanged: `selfservice.whitelisted_return_urls` → `allowed_return_urls`, and
/// `identity.default_schema_url` → `identity.schemas: [{id: default, url}]`.
fn normalize_legacy(value: &mut Value) {
    if let Some(ss) = value.get_mut("selfservice").and_then(Value::as_object_mut)
        && let Some(list) = ss.remove("whitelisted_return_urls")
    {
        tracing::warn!(
            "kratos.yml: selfservice.whitelisted_return_urls is deprecated; read as allowed_return_urls"
        );
        ss.entry("allowed_return_urls").or_insert(list);
    }
    if let Some(identity) = value.get_mut("identity").and_then(Value::as_object_mut)
        && let Some(url) = identity.remove("default_schema_url")
    {
        tracing::warn!(
            "kratos.yml: identity.default_schema_url is deprecated; read as identity.schemas[{{id: default}}]"
        );
        let id = identity
            .get("default_schema_id")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        let schemas = identity
            .entry("schemas")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Some(list) = schemas.as_array_mut()
            && !list
                .iter()
                .any(|s| s.get("id").and_then(Value::as_str) == Some(&id))
        {
            list.push(serde_json::json!({"id": id, "url": url}));
        }
    }
}

/// The after-hooks of a flow (`after.hooks` and `after.password.hooks`); hooks outside
/// `supported` are reported and ignored.
fn after_hooks(flow: &str, after: &Value, supported: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for hook in ["/password/hooks", "/hooks"]
        .iter()
        .filter_map(|p| after.pointer(p))
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|h| h.get("hook").and_then(Value::as_str))
    {
        if supported.contains(&hook) {
            out.push(hook.to_string());
        } else {
            tracing::warn!(
                hook,
                "{flow} after-hook {hook} is not supported yet; ignored"
            );
        }
    }
    out
}

/// Kratos's CORS defaults for anything the file leaves out.
fn cors(c: &RawCors) -> Cors {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    Cors {
        allowed_origins: c.allowed_origins.clone().unwrap_or_else(|| strings(&["*"])),
        allowed_methods: c
            .allowed_methods
            .clone()
            .unwrap_or_else(|| strings(&["POST", "GET", "PUT", "PATCH", "DELETE"])),
        allowed_headers: c.allowed_headers.clone().unwrap_or_else(|| {
            strings(&[
                "Authorization",
                "Content-Type",
                "Max-Age",
                "X-Session-Token",
                "X-XSRF-TOKEN",
                "X-CSRF-TOKEN",
            ])
        }),
        exposed_headers: c
            .exposed_headers
            .clone()
            .unwrap_or_else(|| strings(&["Content-Type"])),
        allow_credentials: c.allow_credentials.unwrap_or(true),
        max_age: c.max_age.unwrap_or(0),
    }
}

fn default_base(host: Option<&str>, port: u16) -> String {
    let host = match host {
        None | Some("") | Some("0.0.0.0") | Some("::") => "127.0.0.1",
        Some(h) => h,
    };
    format!("http://{host}:{port}/")
}

/// Drops DSN parameters only Kratos's Go drivers understand.
fn normalize_dsn(dsn: &str) -> String {
    const KRATOS_ONLY: &[&str] = &[
        "_fk",
        "_journal_mode",
        "_journal",
        "max_conns",
        "max_idle_conns",
        "max_conn_lifetime",
        "max_conn_idle_time",
        "connect_timeout",
    ];
    let Some((base, query)) = dsn.split_once('?') else {
        return dsn.to_string();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| {
            let key = kv.split('=').next().unwrap_or("");
            !kv.is_empty() && !KRATOS_ONLY.contains(&key)
        })
        .collect();
    if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    }
}

fn courier_config(
    c: &RawCourier,
    doc: &Document,
    base_dir: &Path,
) -> Result<CourierConfig, IdentityError> {
    let smtp = c
        .smtp
        .connection_uri
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .map(|uri| {
            SmtpConfig::parse(
                uri,
                c.smtp
                    .from_address
                    .clone()
                    .unwrap_or_else(|| "no-reply@ory.kratos.sh".into()),
                c.smtp.from_name.clone().filter(|n| !n.is_empty()),
                c.smtp.headers.clone(),
                c.smtp.local_name.clone().filter(|n| !n.is_empty()),
            )
            .map_err(|e| doc.error_at("/courier/smtp/connection_uri", e.to_string()))
        })
        .transpose()?;
    let override_path = c
        .template_override_path
        .as_deref()
        .filter(|p| !p.is_empty())
        .map(|p| {
            let p = Path::new(p.strip_prefix("file://").unwrap_or(p));
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base_dir.join(p)
            }
        });
    let overrides = Overrides::compile(&c.templates, override_path.as_deref(), base_dir).map_err(
        |(at, e)| {
            let pointer = if at.starts_with('/') {
                format!("/courier/templates{at}")
            } else {
                "/courier/template_override_path".to_string()
            };
            IdentityError::from(doc.error_at(&pointer, format!("{at}: {e}")))
        },
    )?;
    let pull_wait = parse_duration(c.worker.pull_wait.as_deref().unwrap_or("1s"))
        .and_then(|d| std::time::Duration::try_from(d).ok())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            IdentityError::from(doc.error_at("/courier/worker/pull_wait", "invalid duration"))
        })?;
    Ok(CourierConfig {
        smtp,
        message_retries: c.message_retries.unwrap_or(5),
        pull_count: c.worker.pull_count.unwrap_or(10).max(1),
        pull_wait,
        retry_backoff: std::time::Duration::from_secs(1),
        overrides,
    })
}

fn breach_config(
    c: &RawPasswordConfig,
    ext: &Extensions,
    doc: &Document,
    base_dir: &Path,
) -> Result<BreachConfig, IdentityError> {
    let offline = match &ext.breached_passwords_file {
        None | Some(Value::Null) => None,
        Some(Value::String(file)) => {
            let path = base_dir.join(file.strip_prefix("file://").unwrap_or(file));
            let list = OfflineList::load(&path).map_err(|e| {
                doc.error_at(
                    EXT_BREACHED_PASSWORDS_FILE,
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            tracing::info!(entries = list.len(), file = %path.display(), "offline breached-password list loaded");
            Some(Arc::new(list))
        }
        Some(_) => {
            return Err(doc
                .error_at(EXT_BREACHED_PASSWORDS_FILE, "must be a file path")
                .into());
        }
    };
    Ok(BreachConfig {
        enabled: c.haveibeenpwned_enabled.unwrap_or(true),
        base_url: BreachConfig::base_url_for(
            c.haveibeenpwned_host
                .as_deref()
                .unwrap_or("api.pwnedpasswords.com"),
        ),
        max_breaches: c.max_breaches.unwrap_or(0),
        ignore_network_errors: c.ignore_network_errors.unwrap_or(true),
        offline,
    })
}

fn brute_force_config(ext: &Extensions, doc: &Document) -> Result<BruteForceConfig, IdentityError> {
    let raw: RawBruteForce = match &ext.brute_force {
        None | Some(Value::Null) => RawBruteForce::default(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| doc.error_at(EXT_BRUTE_FORCE, format!("invalid value: {e}")))?,
    };
    let defaults = BruteForceConfig::default();
    let duration = |key: &str, v: &Option<String>, default: Duration| match v {
        None => Ok(default),
        Some(s) => parse_duration(s)
            .and_then(|d| Duration::try_from(d).ok())
            .ok_or_else(|| {
                IdentityError::from(
                    doc.error_at(&format!("{EXT_BRUTE_FORCE}/{key}"), "invalid duration"),
                )
            }),
    };
    let lockout = duration("lockout", &raw.lockout, defaults.lockout)?;
    let max_lockout = duration("max_lockout", &raw.max_lockout, defaults.max_lockout)?.max(lockout);
    let reset_after =
        duration("reset_after", &raw.reset_after, defaults.reset_after)?.max(max_lockout);
    Ok(BruteForceConfig {
        enabled: raw.enabled.unwrap_or(defaults.enabled),
        max_attempts: raw.max_attempts.unwrap_or(defaults.max_attempts),
        max_attempts_per_ip: raw
            .max_attempts_per_ip
            .unwrap_or(defaults.max_attempts_per_ip),
        lockout,
        max_lockout,
        reset_after,
    })
}

fn hasher_config(h: &RawHashers, doc: &Document) -> Result<Algorithm, IdentityError> {
    let mut c = Argon2Config::default();
    match h.algorithm.as_deref() {
        Some("bcrypt") => {
            let cost = h.bcrypt.cost.unwrap_or(12);
            if cost < crate::hash::BCRYPT_MIN_COST {
                tracing::warn!(
                    cost,
                    "hashers.bcrypt.cost {cost} is below OWASP's minimum work factor {}; using {}",
                    crate::hash::BCRYPT_MIN_COST,
                    crate::hash::BCRYPT_MIN_COST
                );
            }
            return Ok(Algorithm::Bcrypt(cost).at_least_owasp());
        }
        Some("argon2") | None => {
            if let Some(m) = &h.argon2.memory {
                c.memory_kib = parse_byte_size_kib(m).ok_or_else(|| {
                    IdentityError::from(doc.error_at("/hashers/argon2/memory", "invalid byte size"))
                })?;
            }
            c.iterations = h.argon2.iterations.unwrap_or(c.iterations);
            c.parallelism = h.argon2.parallelism.unwrap_or(c.parallelism);
            c.salt_length = h.argon2.salt_length.unwrap_or(c.salt_length);
            c.key_length = h.argon2.key_length.unwrap_or(c.key_length);
        }
        Some(other) => {
            return Err(doc
                .error_at(
                    "/hashers/algorithm",
                    format!("hashers.algorithm {other} is not supported; use argon2 or bcrypt"),
                )
                .into());
        }
    }
    Ok(Algorithm::Argon2id(c).at_least_owasp())
}

fn load_schemas(
    raw: &RawIdentity,
    doc: &Document,
    base_dir: &Path,
) -> Result<Schemas, IdentityError> {
    let mut list = Vec::new();
    for (i, s) in raw.schemas.iter().enumerate() {
        let pointer = format!("/identity/schemas/{i}/url");
        let url = resolve_schema_url(&s.url, base_dir);
        let schema = IdentitySchema::load(&s.id, &url, base_dir)
            .map_err(|e: SchemaError| doc.error_at(&pointer, e.to_string()))?;
        list.push((s.id.clone(), s.url.clone(), schema));
    }
    let default_id = raw
        .default_schema_id
        .clone()
        .unwrap_or_else(|| "default".into());
    if !list.iter().any(|(id, _, _)| *id == default_id) {
        return Err(doc
            .error_at(
                "/identity/default_schema_id",
                format!("no identity schema has id {default_id:?}"),
            )
            .into());
    }
    Ok(Schemas { default_id, list })
}

/// Absolute `file://` paths that do not exist are looked up by file name next to the config:
/// Kratos's examples mount the config directory at `/etc/config/kratos`, so the tutorial's
/// `file:///etc/config/kratos/identity.schema.json` means "the schema beside kratos.yml".
fn resolve_schema_url(url: &str, base_dir: &Path) -> String {
    if let Some(path) = crate::fetcher::file_path(url, base_dir)
        && path.is_absolute()
        && !path.exists()
        && let Some(name) = path.file_name()
    {
        let beside = base_dir.join(name);
        if beside.exists() {
            tracing::warn!(
                configured = url,
                using = %beside.display(),
                "identity schema not found at its absolute path; using the file beside the config"
            );
            return format!("file://{}", absolute(&beside).display());
        }
    }
    url.to_string()
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Parses Go durations (`1h`, `10m`, `1h30m`, `500ms`).
pub fn parse_duration(s: &str) -> Option<time::Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(digits);
        let n: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let secs = match unit {
            "ns" => n / 1e9,
            "us" | "µs" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => return None,
        };
        total += Duration::try_from_secs_f64(secs).ok()?;
        rest = next;
    }
    time::Duration::try_from(total).ok()
}

/// Joins a path onto a base URL, keeping the base's own path prefix
/// (`http://h/kratos/` + `/self-service/login` → `http://h/kratos/self-service/login`).
pub fn join_url(base: &Url, path: &str) -> String {
    let mut s = base.as_str().trim_end_matches('/').to_string();
    s.push_str(path);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn embedded_schema_is_the_official_one() {
        let reference = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/reference/kratos/config.schema.json");
        if let Ok(text) = std::fs::read_to_string(&reference) {
            assert_eq!(text, CONFIG_SCHEMA, "embedded schema drifted");
        }
        assert!(SCHEMA.is_object(), "embedded schema parses");
        assert!(VALIDATOR.is_ok());
    }

    #[test]
    fn durations_and_dsns() {
        assert_eq!(parse_duration("10m"), Some(time::Duration::minutes(10)));
        assert_eq!(parse_duration("1h30m"), Some(time::Duration::minutes(90)));
        assert_eq!(
            parse_duration("500ms"),
            Some(time::Duration::milliseconds(500))
        );
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(
            normalize_dsn("sqlite:///var/lib/sqlite/db.sqlite?_fk=true&mode=rwc"),
            "sqlite:///var/lib/sqlite/db.sqlite?mode=rwc"
        );
        assert_eq!(normalize_dsn("memory"), "memory");
    }

    #[test]
    fn legacy_keys_are_renamed() {
        let mut v = json!({
            "selfservice": {"whitelisted_return_urls": ["http://a"]},
            "identity": {"default_schema_url": "file:///x.json"}
        });
        normalize_legacy(&mut v);
        assert_eq!(v["selfservice"]["allowed_return_urls"], json!(["http://a"]));
        assert_eq!(
            v["identity"]["schemas"],
            json!([{"id": "default", "url": "file:///x.json"}])
        );
    }
}
