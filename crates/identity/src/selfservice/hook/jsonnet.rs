//! Rendering Jsonnet templates (Kratos's hook bodies) with `rsjsonnet-lang`, a pure-Rust
//! evaluator: a template is `function(ctx) …` called with the context as its argument (or a
//! plain value). The context is passed as JSON source, which is valid Jsonnet, so no value
//! conversion is needed. Templates cannot import files or call native functions.

use rsjsonnet_lang::arena::Arena;
use rsjsonnet_lang::interner::InternedStr;
use rsjsonnet_lang::program::{
    Callbacks, EvalError, EvalErrorKind, EvalStackTraceItem, ImportError, NativeError, Program,
    Thunk, Value as JsonnetValue,
};
use rsjsonnet_lang::span::SpanId;
use serde_json::Value;

/// Deepest call nesting a template may reach.
const MAX_STACK: usize = 200;

struct NoImports;

impl<'p> Callbacks<'p> for NoImports {
    fn import(
        &mut self,
        _: &mut Program<'p>,
        _: SpanId,
        _: &str,
    ) -> Result<Thunk<'p>, ImportError> {
        Err(ImportError)
    }

    fn import_str(
        &mut self,
        _: &mut Program<'p>,
        _: SpanId,
        _: &str,
    ) -> Result<String, ImportError> {
        Err(ImportError)
    }

    fn import_bin(
        &mut self,
        _: &mut Program<'p>,
        _: SpanId,
        _: &str,
    ) -> Result<Vec<u8>, ImportError> {
        Err(ImportError)
    }

    fn trace(&mut self, _: &mut Program<'p>, message: &str, _: &[EvalStackTraceItem]) {
        tracing::debug!(message, "jsonnet trace");
    }

    fn native_call(
        &mut self,
        _: &mut Program<'p>,
        _: InternedStr<'p>,
        _: &[JsonnetValue<'p>],
    ) -> Result<JsonnetValue<'p>, NativeError> {
        Err(NativeError)
    }
}

/// Evaluates `template` with `ctx` and returns the JSON it produces; the error is a readable
/// description (an explicit `error "…"` gives its message).
pub fn render(template: &str, ctx: &Value) -> Result<Value, String> {
    evaluate(template, ctx, &[])
}

/// [`render`] with external variables (`std.extVar(name)`), as the session tokenizer's claims
/// mappers read `session` and `claims`.
pub fn evaluate(template: &str, ctx: &Value, ext_vars: &[(&str, &Value)]) -> Result<Value, String> {
    let arena = Arena::new();
    let mut program = Program::new(&arena);
    program.set_max_stack(MAX_STACK);
    let mut callbacks = NoImports;
    for (name, value) in ext_vars {
        let source = value.to_string();
        let thunk = load(&mut program, source.as_bytes(), &format!("{name}.json"))?;
        let name = program.intern_str(name);
        program.add_ext_var(name, &thunk);
    }
    let template = load(&mut program, template.as_bytes(), "template.jsonnet")?;
    let value = program
        .eval_value(&template, &mut callbacks)
        .map_err(describe)?;
    let value = if value.is_function() {
        let ctx_source = ctx.to_string();
        let ctx = load(&mut program, ctx_source.as_bytes(), "ctx.json")?;
        program
            .eval_call(&template, &[ctx], &[], &mut callbacks)
            .map_err(describe)?
    } else {
        value
    };
    let json = program.manifest_json(&value, false).map_err(describe)?;
    serde_json::from_str(&json).map_err(|e| e.to_string())
}

fn load<'p>(program: &mut Program<'p>, source: &[u8], name: &str) -> Result<Thunk<'p>, String> {
    let (span_ctx, _) = program
        .span_manager_mut()
        .insert_source_context(source.len());
    program
        .load_source(span_ctx, source, true, name)
        .map_err(|e| format!("{name} does not parse: {e:?}"))
}

fn describe(e: EvalError) -> String {
    match e.kind {
        EvalErrorKind::ExplicitError { message, .. } => message,
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_render_with_ctx() {
        let ctx = json!({"identity": {"id": "x", "traits": {"email": "a@b.c"}}, "n": [1, 2]});
        assert_eq!(
            render(
                "function(ctx) { email: ctx.identity.traits.email, sum: std.foldl(function(a, b) a + b, ctx.n, 0) }",
                &ctx
            ),
            Ok(json!({"email": "a@b.c", "sum": 3}))
        );
        assert_eq!(
            render("{ constant: true }", &ctx),
            Ok(json!({"constant": true}))
        );
        assert_eq!(
            render("function(ctx) error 'cancel'", &ctx),
            Err("cancel".to_string())
        );
        assert!(render("function(ctx) import 'x.libsonnet'", &ctx).is_err());
        assert!(render("function(ctx) {", &ctx).is_err());
        // Strings from the context stay data, whatever they contain.
        let tricky = json!({"s": "\"}; error 'x' //\n\\u0041 ||| é"});
        assert_eq!(
            render("function(ctx) ctx.s", &tricky),
            Ok(tricky["s"].clone())
        );
    }
}
