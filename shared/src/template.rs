//! Temporary stand-in for the template module (being written on another branch); same API.

use std::sync::{Arc, LazyLock};

static ENV: LazyLock<minijinja::Environment<'static>> = LazyLock::new(|| {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env
});

/// A JSON tree whose strings may be templates.
#[derive(Clone)]
pub struct Compiled(Arc<serde_json::Value>);

/// A template that failed to compile or render.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub path: String,
    pub message: String,
    pub line: Option<u32>,
}

impl Compiled {
    pub fn new(value: &serde_json::Value) -> Result<Compiled, TemplateError> {
        Ok(Compiled(Arc::new(value.clone())))
    }
    pub fn text(source: &str) -> Result<Compiled, TemplateError> {
        Ok(Compiled(Arc::new(serde_json::Value::String(source.to_owned()))))
    }
    pub fn render(&self, ctx: &minijinja::Value) -> Result<serde_json::Value, TemplateError> {
        render_value(&self.0, ctx)
    }
    pub fn is_literal(&self) -> bool {
        false
    }
}

fn render_value(v: &serde_json::Value, ctx: &minijinja::Value) -> Result<serde_json::Value, TemplateError> {
    let err = |e: minijinja::Error| TemplateError { path: String::new(), message: e.to_string(), line: None };
    Ok(match v {
        serde_json::Value::String(s) => {
            let t = s.trim();
            if t.starts_with("{{") && t.ends_with("}}") && t[2..].find("{{").is_none() {
                let expr = ENV.compile_expression(&t[2..t.len() - 2]).map_err(err)?;
                let out = expr.eval(ctx).map_err(err)?;
                serde_json::to_value(&out).map_err(|e| TemplateError { path: String::new(), message: e.to_string(), line: None })?
            } else if s.contains("{{") || s.contains("{%") {
                serde_json::Value::String(ENV.render_str(s, ctx).map_err(err)?)
            } else {
                v.clone()
            }
        }
        serde_json::Value::Array(a) => serde_json::Value::Array(a.iter().map(|x| render_value(x, ctx)).collect::<Result<_, _>>()?),
        serde_json::Value::Object(o) => serde_json::Value::Object(
            o.iter().map(|(k, x)| Ok((k.clone(), render_value(x, ctx)?))).collect::<Result<_, TemplateError>>()?,
        ),
        other => other.clone(),
    })
}

pub fn truthy(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => false,
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Number(n) => n.as_f64() != Some(0.0),
        serde_json::Value::String(s) => !s.is_empty(),
        serde_json::Value::Array(a) => !a.is_empty(),
        serde_json::Value::Object(o) => !o.is_empty(),
    }
}

pub fn eval_expression(expr: &str, ctx: &minijinja::Value) -> Result<serde_json::Value, TemplateError> {
    let err = |e: minijinja::Error| TemplateError { path: String::new(), message: e.to_string(), line: None };
    let out = ENV.compile_expression(expr).map_err(err)?.eval(ctx).map_err(err)?;
    serde_json::to_value(&out).map_err(|e| TemplateError { path: String::new(), message: e.to_string(), line: None })
}

pub fn secret_names(_source: &str) -> Result<Vec<String>, TemplateError> {
    Ok(Vec::new())
}
