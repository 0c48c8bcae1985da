//! The UI as data: a flow's `ui` container (`action`, `method`, `nodes`, `messages`), exactly as
//! Kratos serialises it, so any Kratos UI renders our flows. Nodes are stored with the flow and
//! updated in place (values kept, messages attached) when a submission fails.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::text::Text;

/// The group a node belongs to (`default`, `password`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// Not tied to one method (csrf token, traits in the unified form, identifier).
    Default,
    /// The password method.
    Password,
    /// Profile traits.
    Profile,
    /// The one-time code method (verification, recovery).
    Code,
    /// The e-mailed link method (verification, recovery).
    Link,
}

/// A node's attributes, discriminated by `node_type` as in the OpenAPI spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "node_type", rename_all = "snake_case")]
pub enum Attributes {
    /// `<input>`.
    Input(InputAttributes),
}

/// `uiNodeInputAttributes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputAttributes {
    /// Element name (`traits.email`, `password`, `csrf_token`, `method`).
    pub name: String,
    /// HTML input type.
    #[serde(rename = "type")]
    pub input_type: String,
    /// Current value; omitted when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Whether the field is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,
    /// Always present, as in Kratos.
    pub disabled: bool,
    /// Autocomplete hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autocomplete: Option<String>,
    /// Regex pattern copied from the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// Label for submit buttons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Text>,
}

/// `uiNodeMeta`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The field's label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Text>,
}

/// `uiNode`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// `input` (mirrors `attributes.node_type`).
    #[serde(rename = "type")]
    pub node_type: String,
    /// The method group.
    pub group: Group,
    /// Attributes.
    pub attributes: Attributes,
    /// Messages about this field (always present).
    #[serde(default)]
    pub messages: Vec<Text>,
    /// Label (always present).
    #[serde(default)]
    pub meta: Meta,
}

impl Node {
    /// An input node.
    pub fn input(group: Group, name: &str, input_type: &str) -> Self {
        Self {
            node_type: "input".into(),
            group,
            attributes: Attributes::Input(InputAttributes {
                name: name.into(),
                input_type: input_type.into(),
                value: None,
                required: None,
                disabled: false,
                autocomplete: None,
                pattern: None,
                label: None,
            }),
            messages: Vec::new(),
            meta: Meta::default(),
        }
    }

    /// The hidden `csrf_token` node carrying a masked token.
    pub fn csrf(masked_token: &str) -> Self {
        Self::input(Group::Default, "csrf_token", "hidden")
            .required()
            .value(Value::String(masked_token.into()))
    }

    /// A `method` submit button.
    pub fn submit(group: Group, method: &str, label: Text) -> Self {
        let mut node = Self::input(group, "method", "submit").value(Value::String(method.into()));
        let Attributes::Input(a) = &mut node.attributes;
        a.label = Some(label.clone());
        node.meta.label = Some(label);
        node
    }

    /// A submit button named `name` carrying `value` (e.g. the resend button `email`).
    pub fn button(group: Group, name: &str, value: Value, label: Text) -> Self {
        let mut node = Self::input(group, name, "submit").value(value);
        let Attributes::Input(a) = &mut node.attributes;
        a.label = Some(label.clone());
        node.meta.label = Some(label);
        node
    }

    /// Marks the field required.
    pub fn required(mut self) -> Self {
        let Attributes::Input(a) = &mut self.attributes;
        a.required = Some(true);
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: Value) -> Self {
        let Attributes::Input(a) = &mut self.attributes;
        a.value = Some(value);
        self
    }

    /// Sets a string value.
    pub fn value_str(self, value: &str) -> Self {
        self.value(Value::String(value.into()))
    }

    /// Sets the autocomplete hint.
    pub fn autocomplete(mut self, hint: &str) -> Self {
        let Attributes::Input(a) = &mut self.attributes;
        a.autocomplete = Some(hint.into());
        self
    }

    /// Sets the pattern.
    pub fn pattern(mut self, pattern: &str) -> Self {
        let Attributes::Input(a) = &mut self.attributes;
        a.pattern = Some(pattern.into());
        self
    }

    /// Sets the label.
    pub fn label(mut self, label: Text) -> Self {
        self.meta.label = Some(label);
        self
    }

    /// The element name.
    pub fn name(&self) -> &str {
        let Attributes::Input(a) = &self.attributes;
        &a.name
    }

    fn input_type(&self) -> &str {
        let Attributes::Input(a) = &self.attributes;
        &a.input_type
    }
}

/// `uiContainer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// Absolute URL the form posts to.
    pub action: String,
    /// Always `POST`.
    pub method: String,
    /// The form's nodes.
    pub nodes: Vec<Node>,
    /// Flow-level messages; omitted when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Text>,
}

impl Container {
    /// An empty `POST` form to `action`.
    pub fn new(action: String) -> Self {
        Self {
            action,
            method: "POST".into(),
            nodes: Vec::new(),
            messages: Vec::new(),
        }
    }

    /// Clears every message, before a submission is judged again.
    pub fn reset_messages(&mut self) {
        self.messages.clear();
        for node in &mut self.nodes {
            node.messages.clear();
        }
    }

    /// Attaches `message` to the node called `name`, or to the form when there is none.
    pub fn add_message(&mut self, name: &str, message: Text) {
        match self.nodes.iter_mut().find(|n| n.name() == name) {
            Some(node) => node.messages.push(message),
            None => self.messages.push(message),
        }
    }

    /// Refills field values from a submitted body (dotted names looked up in the nested
    /// value); password fields and buttons are never echoed back.
    pub fn refill(&mut self, body: &Value) {
        for node in &mut self.nodes {
            let input_type = node.input_type().to_string();
            if matches!(input_type.as_str(), "password" | "submit" | "hidden") {
                continue;
            }
            let found = lookup_dotted(body, node.name()).cloned();
            let Attributes::Input(a) = &mut node.attributes;
            a.value = found.filter(|v| !v.is_null());
        }
    }

    /// Replaces the csrf token value (after the token was rotated).
    pub fn set_csrf(&mut self, masked_token: &str) {
        for node in &mut self.nodes {
            if node.name() == "csrf_token" {
                let Attributes::Input(a) = &mut node.attributes;
                a.value = Some(Value::String(masked_token.into()));
            }
        }
    }
}

/// Looks up `a.b.c` in a nested JSON object.
pub fn lookup_dotted<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn node_serialises_as_kratos_does() {
        let node = Node::csrf("tok");
        assert_eq!(
            serde_json::to_value(&node).expect("json"),
            json!({"type": "input", "group": "default", "attributes": {
                "name": "csrf_token", "type": "hidden", "value": "tok", "required": true,
                "disabled": false, "node_type": "input"}, "messages": [], "meta": {}})
        );
    }

    #[test]
    fn refill_keeps_traits_and_drops_passwords() {
        let mut ui = Container::new("http://x".into());
        ui.nodes
            .push(Node::input(Group::Default, "traits.email", "email"));
        ui.nodes
            .push(Node::input(Group::Password, "password", "password"));
        ui.refill(&json!({"traits": {"email": "a@b.c"}, "password": "secret"}));
        let json = serde_json::to_value(&ui).expect("json");
        assert_eq!(json["nodes"][0]["attributes"]["value"], "a@b.c");
        assert!(json["nodes"][1]["attributes"].get("value").is_none());
    }
}
