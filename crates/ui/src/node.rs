//! Turns a flow's `ui` container into forms a template can print, without knowing any method.
//!
//! Key decision: one `<form>` per method group (`password`, `code`, `oidc`, `profile`, ...),
//! in the order the groups first appear, social sign-in (`oidc`, `saml`) first. Every form
//! carries the `default` group's hidden inputs (the CSRF token, hidden traits); forms other
//! than social sign-in also carry its visible inputs (the identifier, the traits). So a
//! required field of one method never blocks submitting another, and a new method renders
//! without a new page.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::flow::null_as_default;
use crate::i18n::Locale;

/// The flow's `ui` object.
#[derive(Debug, Clone, Deserialize)]
pub struct UiContainer {
    /// Absolute URL the forms post to.
    pub action: String,
    /// HTTP method of the forms.
    pub method: String,
    /// The nodes, in Kratos' order.
    #[serde(default, deserialize_with = "null_as_default")]
    pub nodes: Vec<Node>,
    /// Flow-level messages.
    #[serde(default, deserialize_with = "null_as_default")]
    pub messages: Vec<UiText>,
}

/// One `uiNode`.
#[derive(Debug, Clone, Deserialize)]
pub struct Node {
    /// `input`, `text`, `img`, `a`, `script` or `div`.
    #[serde(rename = "type")]
    pub node_type: String,
    /// The method group, e.g. `default`, `password`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub group: String,
    /// Type-specific attributes.
    #[serde(default, deserialize_with = "null_as_default")]
    pub attributes: serde_json::Map<String, Value>,
    /// Messages about this node.
    #[serde(default, deserialize_with = "null_as_default")]
    pub messages: Vec<UiText>,
    /// `meta.label`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub meta: NodeMeta,
}

/// `uiNodeMeta`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NodeMeta {
    /// The node's label.
    #[serde(default)]
    pub label: Option<UiText>,
}

/// `uiText`: a message with Kratos' numeric id.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct UiText {
    /// Message id, e.g. 4000006.
    #[serde(default)]
    pub id: i64,
    /// English text.
    #[serde(default)]
    pub text: String,
    /// `info`, `error` or `success`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Values the text was built from.
    #[serde(default)]
    pub context: Option<Value>,
}

/// A message ready to print.
#[derive(Debug, Clone, Serialize)]
pub struct MessageView {
    /// Kratos' message id.
    pub id: i64,
    /// The text.
    pub text: String,
    /// `info`, `error` or `success` (anything else counts as `info`).
    pub kind: &'static str,
    /// DOM id, for `aria-describedby`.
    pub dom_id: String,
}

/// One `<form>`.
#[derive(Debug, Clone, Serialize)]
pub struct FormView {
    /// The method group it submits.
    pub group: String,
    /// A heading for settings pages, where each form is its own section.
    pub heading: Option<&'static str>,
    /// Where it posts.
    pub action: String,
    /// `post` or `get`.
    pub method: String,
    /// Messages of hidden inputs, shown at the top of the form.
    pub messages: Vec<MessageView>,
    /// The nodes in order.
    pub nodes: Vec<NodeView>,
}

/// One node, classified for the template.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeView {
    /// `<input type=hidden>`.
    Hidden {
        /// Field name.
        name: String,
        /// Field value.
        value: String,
    },
    /// `<button type=submit>` (name/value posted with the form).
    Submit {
        /// Field name.
        name: String,
        /// Field value.
        value: String,
        /// Button text.
        label: String,
        /// `false` adds `formnovalidate` (resend, back, provider buttons).
        validate: bool,
    },
    /// `<button type=button>` (script-driven, e.g. WebAuthn triggers).
    Button {
        /// Field name.
        name: String,
        /// Field value.
        value: String,
        /// Button text.
        label: String,
    },
    /// A labelled input, checkbox or select.
    Field(Box<FieldView>),
    /// Text, possibly with a list of secrets (lookup codes).
    Text {
        /// DOM id.
        id: String,
        /// The text.
        text: String,
        /// Secrets listed under the text.
        secrets: Vec<String>,
        /// Node messages.
        messages: Vec<MessageView>,
    },
    /// `<img>` (e.g. a TOTP QR code).
    Image {
        /// DOM id.
        id: String,
        /// Image URL (often a data: URL).
        src: String,
        /// Width in pixels.
        width: Option<i64>,
        /// Height in pixels.
        height: Option<i64>,
        /// Alternative text.
        alt: String,
    },
    /// `<a>`.
    Link {
        /// DOM id.
        id: String,
        /// Target.
        href: String,
        /// Link text.
        title: String,
    },
    /// `<script src>`.
    Script {
        /// DOM id.
        id: String,
        /// Script URL.
        src: String,
        /// `async`.
        is_async: bool,
        /// `referrerpolicy`.
        referrerpolicy: String,
        /// `crossorigin`.
        crossorigin: String,
        /// `integrity`.
        integrity: String,
        /// `type`.
        script_type: String,
        /// `nonce`.
        nonce: String,
    },
    /// `<div>`.
    Division {
        /// DOM id.
        id: String,
        /// CSS class.
        class: String,
    },
}

/// A labelled form field.
#[derive(Debug, Clone, Serialize)]
pub struct FieldView {
    /// DOM id (unique per page).
    pub id: String,
    /// Field name.
    pub name: String,
    /// HTML input type (an allow-listed value).
    pub input_type: &'static str,
    /// Current value.
    pub value: String,
    /// Whether a checkbox is ticked.
    pub checked: bool,
    /// Label text.
    pub label: String,
    /// `required`.
    pub required: bool,
    /// `disabled`.
    pub disabled: bool,
    /// `autocomplete`.
    pub autocomplete: String,
    /// `pattern`.
    pub pattern: String,
    /// `maxlength`.
    pub maxlength: Option<i64>,
    /// Allowed values: rendered as a `<select>` when not empty.
    pub options: Vec<String>,
    /// Node messages.
    pub messages: Vec<MessageView>,
    /// Whether any message is an error.
    pub invalid: bool,
    /// Space-separated message DOM ids.
    pub describedby: String,
    /// Whether this field gets the initial focus.
    pub autofocus: bool,
}

/// Converts `uiText`s into printable messages in `locale`; `prefix` makes DOM ids unique.
pub fn messages(texts: &[UiText], prefix: &str, locale: Locale) -> Vec<MessageView> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| MessageView {
            id: text.id,
            text: locale.message(text),
            kind: match text.kind.as_str() {
                "error" => "error",
                "success" => "success",
                _ => "info",
            },
            dom_id: format!("{prefix}-msg-{i}"),
        })
        .collect()
}

/// Splits the container's nodes into forms (see the module docs), with messages and labels in
/// `locale`, and picks the initial focus: the first field with an error, else the first
/// visible field.
pub fn forms(ui: &UiContainer, with_headings: bool, locale: Locale) -> Vec<FormView> {
    let mut groups: Vec<&str> = Vec::new();
    for node in &ui.nodes {
        if node.group != "default" && !groups.contains(&node.group.as_str()) {
            groups.push(&node.group);
        }
    }
    groups.sort_by_key(|group| !is_social(group));
    if groups.is_empty() {
        groups.push("default");
    }
    let mut forms: Vec<FormView> = groups
        .iter()
        .enumerate()
        .map(|(index, group)| {
            let prefix = format!("f{index}");
            let mut form = FormView {
                group: group.to_string(),
                heading: if with_headings { heading(group) } else { None },
                action: ui.action.clone(),
                method: ui.method.to_ascii_lowercase(),
                messages: Vec::new(),
                nodes: Vec::new(),
            };
            for (position, node) in ui.nodes.iter().enumerate() {
                let belongs = node.group == *group
                    || (node.group == "default" && (!is_social(group) || is_hidden_input(node)));
                if !belongs {
                    continue;
                }
                let node_prefix = format!("{prefix}-{position}");
                match view(node, &node_prefix, locale) {
                    Some(NodeView::Hidden { name, value }) => {
                        form.messages
                            .extend(messages(&node.messages, &node_prefix, locale));
                        form.nodes.push(NodeView::Hidden { name, value });
                    }
                    Some(other) => form.nodes.push(other),
                    None => tracing::debug!(node_type = %node.node_type, "skipping a node this page cannot show"),
                }
            }
            form
        })
        .collect();
    // A finished flow keeps only its CSRF token: an empty form would show as a blank gap.
    forms.retain(|form| {
        !form.messages.is_empty()
            || form
                .nodes
                .iter()
                .any(|n| !matches!(n, NodeView::Hidden { .. }))
    });
    set_focus(&mut forms);
    forms
}

fn set_focus(forms: &mut [FormView]) {
    let fields = || {
        forms
            .iter()
            .flat_map(|form| form.nodes.iter())
            .filter_map(|node| match node {
                NodeView::Field(field) => Some(field.as_ref()),
                _ => None,
            })
    };
    let target = fields()
        .find(|field| field.invalid)
        .or_else(|| fields().find(|field| !field.disabled))
        .map(|field| field.id.clone());
    let Some(target) = target else { return };
    for form in forms.iter_mut() {
        for node in form.nodes.iter_mut() {
            if let NodeView::Field(field) = node {
                field.autofocus = field.id == target;
            }
        }
    }
}

fn is_social(group: &str) -> bool {
    matches!(group, "oidc" | "saml")
}

fn is_hidden_input(node: &Node) -> bool {
    node.node_type == "input" && str_attr(node, "type") == "hidden"
}

fn heading(group: &str) -> Option<&'static str> {
    Some(match group {
        "profile" => "Profile",
        "password" => "Change password",
        "oidc" | "saml" => "Linked accounts",
        "totp" => "Authenticator app",
        "lookup_secret" => "Backup recovery codes",
        "webauthn" => "Hardware security keys",
        "passkey" => "Passkeys",
        "code" => "Sign-in codes",
        _ => return None,
    })
}

fn view(node: &Node, prefix: &str, locale: Locale) -> Option<NodeView> {
    // `meta.label` is where Kratos puts labels; inputs may also carry `attributes.label`.
    let label = node
        .meta
        .label
        .as_ref()
        .map(|label| locale.message(label))
        .filter(|text| !text.is_empty())
        .or_else(|| {
            node.attributes
                .get("label")
                .and_then(|l| l.get("text"))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default();
    match node.node_type.as_str() {
        "input" => Some(input(node, label, prefix, locale)),
        "text" => {
            let text = node.attributes.get("text");
            let body = text
                .and_then(|t| UiText::deserialize(t).ok())
                .map(|t| locale.message(&t))
                .unwrap_or_default();
            let secrets = text
                .and_then(|t| t.get("context"))
                .and_then(|c| c.get("secrets"))
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .map(|s| match s.get("text") {
                            Some(text) => scalar(text),
                            None => scalar(s),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(NodeView::Text {
                id: str_attr(node, "id").to_string(),
                text: if body.is_empty() { label } else { body },
                secrets,
                messages: messages(&node.messages, prefix, locale),
            })
        }
        "img" => Some(NodeView::Image {
            id: str_attr(node, "id").to_string(),
            src: str_attr(node, "src").to_string(),
            width: node.attributes.get("width").and_then(Value::as_i64),
            height: node.attributes.get("height").and_then(Value::as_i64),
            alt: label,
        }),
        "a" => {
            let title = node
                .attributes
                .get("title")
                .and_then(|t| t.get("text"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or(label);
            Some(NodeView::Link {
                id: str_attr(node, "id").to_string(),
                href: str_attr(node, "href").to_string(),
                title,
            })
        }
        "script" => {
            let src = str_attr(node, "src");
            if src.is_empty() {
                return None;
            }
            Some(NodeView::Script {
                id: str_attr(node, "id").to_string(),
                src: src.to_string(),
                is_async: bool_attr(node, "async"),
                referrerpolicy: str_attr(node, "referrerpolicy").to_string(),
                crossorigin: str_attr(node, "crossorigin").to_string(),
                integrity: str_attr(node, "integrity").to_string(),
                script_type: str_attr(node, "type").to_string(),
                nonce: str_attr(node, "nonce").to_string(),
            })
        }
        "div" => Some(NodeView::Division {
            id: str_attr(node, "id").to_string(),
            class: str_attr(node, "class").to_string(),
        }),
        _ => None,
    }
}

fn input(node: &Node, label: String, prefix: &str, locale: Locale) -> NodeView {
    let name = str_attr(node, "name").to_string();
    let value = node.attributes.get("value").map(scalar).unwrap_or_default();
    let label_or = |fallback: &str| {
        if label.is_empty() {
            fallback.to_string()
        } else {
            label.clone()
        }
    };
    match str_attr(node, "type") {
        "hidden" => NodeView::Hidden { name, value },
        "submit" => NodeView::Submit {
            label: label_or(if value.is_empty() { &name } else { &value }),
            validate: name == "method",
            name,
            value,
        },
        "button" => NodeView::Button {
            label: label_or(if value.is_empty() { &name } else { &value }),
            name,
            value,
        },
        other => {
            let input_type = match other {
                "password" => "password",
                "number" => "number",
                "checkbox" => "checkbox",
                "email" => "email",
                "tel" => "tel",
                "datetime-local" => "datetime-local",
                "date" => "date",
                "url" => "url",
                _ => "text",
            };
            let messages = messages(&node.messages, prefix, locale);
            let checked =
                matches!(node.attributes.get("value"), Some(Value::Bool(true))) || value == "true";
            let options = node
                .attributes
                .get("options")
                .and_then(Value::as_array)
                .map(|options| {
                    options
                        .iter()
                        .map(|o| o.get("value").map(scalar).unwrap_or_else(|| scalar(o)))
                        .collect()
                })
                .unwrap_or_default();
            NodeView::Field(Box::new(FieldView {
                id: format!("{prefix}-{}", dom_safe(&name)),
                label: label_or(&name),
                input_type,
                value,
                checked,
                required: bool_attr(node, "required"),
                disabled: bool_attr(node, "disabled"),
                autocomplete: str_attr(node, "autocomplete").to_string(),
                pattern: str_attr(node, "pattern").to_string(),
                maxlength: node.attributes.get("maxlength").and_then(Value::as_i64),
                options,
                invalid: messages.iter().any(|m| m.kind == "error"),
                describedby: messages
                    .iter()
                    .map(|m| m.dom_id.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                messages,
                autofocus: false,
                name,
            }))
        }
    }
}

fn str_attr<'a>(node: &'a Node, key: &str) -> &'a str {
    node.attributes
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn bool_attr(node: &Node, key: &str) -> bool {
    node.attributes
        .get(key)
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// A JSON value as form text: strings verbatim, other scalars printed, objects as JSON.
fn scalar(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

fn dom_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(nodes: Value) -> UiContainer {
        serde_json::from_value(json!({
            "action": "http://k/self-service/login?flow=1",
            "method": "POST",
            "nodes": nodes,
        }))
        .expect("ui")
    }

    fn input_node(group: &str, name: &str, kind: &str, label: Option<&str>) -> Value {
        let mut meta = json!({});
        if let Some(label) = label {
            meta = json!({"label": {"id": 1, "text": label, "type": "info"}});
        }
        json!({"type": "input", "group": group, "attributes": {"name": name, "type": kind, "value": "", "node_type": "input", "disabled": false}, "messages": [], "meta": meta})
    }

    fn names(form: &FormView) -> Vec<String> {
        form.nodes
            .iter()
            .map(|n| match n {
                NodeView::Hidden { name, .. }
                | NodeView::Submit { name, .. }
                | NodeView::Button { name, .. } => name.clone(),
                NodeView::Field(f) => f.name.clone(),
                _ => "?".into(),
            })
            .collect()
    }

    #[test]
    fn one_form_per_group_with_default_nodes_and_social_first() {
        let ui = container(json!([
            input_node("default", "csrf_token", "hidden", None),
            input_node("default", "identifier", "text", Some("E-Mail")),
            input_node("password", "password", "password", Some("Password")),
            input_node("password", "method", "submit", Some("Sign in")),
            input_node("oidc", "provider", "submit", Some("Sign in with GitHub")),
        ]));
        let forms = forms(&ui, false, Locale::En);
        assert_eq!(forms.len(), 2);
        assert_eq!(forms[0].group, "oidc");
        assert_eq!(names(&forms[0]), ["csrf_token", "provider"]);
        assert_eq!(forms[1].group, "password");
        assert_eq!(
            names(&forms[1]),
            ["csrf_token", "identifier", "password", "method"]
        );
        assert_eq!(forms[1].method, "post");
        let NodeView::Submit { validate, .. } = &forms[0].nodes[1] else {
            panic!("submit")
        };
        assert!(!validate);
    }

    #[test]
    fn focus_goes_to_the_first_field_with_an_error() {
        let mut password = input_node("password", "password", "password", Some("Password"));
        password["messages"] =
            json!([{"id": 4000002, "text": "Property password is missing.", "type": "error"}]);
        let ui = container(json!([
            input_node("default", "identifier", "text", Some("E-Mail")),
            password,
        ]));
        let forms = forms(&ui, false, Locale::En);
        let fields: Vec<&FieldView> = forms[0]
            .nodes
            .iter()
            .filter_map(|n| match n {
                NodeView::Field(f) => Some(f.as_ref()),
                _ => None,
            })
            .collect();
        assert!(!fields[0].autofocus);
        assert!(fields[1].autofocus && fields[1].invalid);
        assert_eq!(fields[1].describedby, fields[1].messages[0].dom_id);
    }

    #[test]
    fn unknown_nodes_and_types_degrade_gracefully() {
        let ui = container(json!([
            {"type": "hologram", "group": "default", "attributes": {}, "messages": [], "meta": {}},
            input_node("default", "traits.x", "color", None),
            {"type": "input", "group": "default", "attributes": {"name": "method", "type": "submit", "value": "profile",
              "node_type": "input", "disabled": false, "label": {"id": 1040001, "text": "Sign up", "type": "info"}}},
            {"type": "text", "group": "lookup_secret", "attributes": {"id": "lookup_secret_codes", "node_type": "text",
              "text": {"id": 1050015, "text": "codes", "type": "info", "context": {"secrets": [{"text": "abc"}, {"text": "def"}]}}},
             "messages": [], "meta": {}},
        ]));
        let forms = forms(&ui, true, Locale::En);
        assert_eq!(forms.len(), 1);
        assert_eq!(forms[0].heading, Some("Backup recovery codes"));
        let NodeView::Field(field) = &forms[0].nodes[0] else {
            panic!("field")
        };
        assert_eq!(field.input_type, "text");
        assert_eq!(field.label, "traits.x");
        let NodeView::Submit { label, .. } = &forms[0].nodes[1] else {
            panic!("submit")
        };
        assert_eq!(label, "Sign up");
        let NodeView::Text { secrets, .. } = &forms[0].nodes[2] else {
            panic!("text")
        };
        assert_eq!(secrets, &["abc", "def"]);
    }
}
