//! Chat templates rendered with minijinja the way HF transformers renders
//! them with jinja2: `trim_blocks` and `lstrip_blocks` on, Python string
//! methods available, `raise_exception`, `strftime_now`, and a `tojson`
//! that writes JSON as Python's `json.dumps` does.

use minijinja::{Environment, Error as JinjaError, ErrorKind, Value as JinjaValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// "system", "user", "assistant" or "tool".
    pub role: String,
    /// The text.
    pub content: String,
}

impl Message {
    /// A message with `role` and `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A compiled chat template.
#[derive(Debug)]
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

impl ChatTemplate {
    /// Compiles `source`; `bos_token` / `eos_token` are passed to it as HF does.
    pub fn new(
        source: String,
        bos_token: Option<String>,
        eos_token: Option<String>,
    ) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned("chat", source)
            .map_err(|e| Error::ChatTemplate(describe(&e)))?;
        Ok(ChatTemplate {
            env,
            bos_token,
            eos_token,
        })
    }

    /// Renders a conversation. `extra` holds further template variables
    /// (e.g. `reasoning_effort`, `tools`, `enable_thinking`).
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        extra: &Map<String, Value>,
    ) -> Result<String> {
        let mut context = extra.clone();
        context.insert(
            "messages".into(),
            serde_json::to_value(messages).unwrap_or_default(),
        );
        context.insert(
            "add_generation_prompt".into(),
            Value::Bool(add_generation_prompt),
        );
        for (key, token) in [
            ("bos_token", &self.bos_token),
            ("eos_token", &self.eos_token),
        ] {
            if let Some(token) = token {
                context
                    .entry(key)
                    .or_insert_with(|| Value::String(token.clone()));
            }
        }
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| Error::ChatTemplate(describe(&e)))?;
        template
            .render(JinjaValue::from_serialize(&context))
            .map_err(|e| Error::ChatTemplate(describe(&e)))
    }
}

fn describe(e: &JinjaError) -> String {
    let mut text = e.to_string();
    if let Some(line) = e.line() {
        text.push_str(&format!(" (template line {line})"));
    }
    text
}

fn raise_exception(message: String) -> std::result::Result<JinjaValue, JinjaError> {
    Err(JinjaError::new(ErrorKind::InvalidOperation, message))
}

fn strftime_now(format: String) -> String {
    // Templates use this for "today's date" lines; UTC is what a server has.
    let now = time::OffsetDateTime::now_utc();
    let month = now.month();
    let name = month.to_string();
    format
        .replace("%Y", &format!("{:04}", now.year()))
        .replace("%m", &format!("{:02}", u8::from(month)))
        .replace("%d", &format!("{:02}", now.day()))
        .replace("%B", &name)
        .replace("%b", &name[..3])
}

/// Today's date in UTC as `YYYY-MM-DD`, what a template's
/// `strftime_now("%Y-%m-%d")` writes (Harmony's "Current date" line).
pub fn today_utc() -> String {
    strftime_now("%Y-%m-%d".into())
}

fn tojson(
    value: JinjaValue,
    kwargs: minijinja::value::Kwargs,
) -> std::result::Result<String, JinjaError> {
    let indent: Option<usize> = kwargs.get("indent")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value)
        .map_err(|e| JinjaError::new(ErrorKind::InvalidOperation, e.to_string()))?;
    let mut out = String::new();
    python_json(&json, indent, 0, &mut out);
    Ok(out)
}

/// Writes `value` as Python's `json.dumps(value, ensure_ascii=False, indent=indent)`.
pub fn python_json(value: &Value, indent: Option<usize>, depth: usize, out: &mut String) {
    let newline = |out: &mut String, depth: usize| {
        if let Some(width) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(width * depth));
        }
    };
    let item_separator = if indent.is_some() { "," } else { ", " };
    match value {
        Value::Array(items) if !items.is_empty() => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_separator);
                }
                newline(out, depth + 1);
                python_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Object(map) if !map.is_empty() => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_separator);
                }
                newline(out, depth + 1);
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(": ");
                python_json(item, indent, depth + 1, out);
            }
            newline(out, depth);
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tojson_writes_like_python() {
        let v: Value = serde_json::from_str(r#"{"a": [1, "é"], "b": {}}"#).unwrap();
        let mut out = String::new();
        python_json(&v, None, 0, &mut out);
        assert_eq!(out, r#"{"a": [1, "é"], "b": {}}"#);
        let mut out = String::new();
        python_json(&v, Some(2), 0, &mut out);
        assert_eq!(
            out,
            "{\n  \"a\": [\n    1,\n    \"é\"\n  ],\n  \"b\": {}\n}"
        );
    }

    #[test]
    fn today_is_an_iso_date_and_month_names_are_english() {
        const MONTHS: [&str; 12] = [
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ];
        let today = today_utc();
        let parts: Vec<&str> = today.split('-').collect();
        assert_eq!(parts.len(), 3, "{today}");
        assert!(parts[0].len() == 4 && parts[1].len() == 2 && parts[2].len() == 2);
        let month: usize = parts[1].parse().unwrap();
        let day: u32 = parts[2].parse().unwrap();
        assert!(
            (1..=12).contains(&month) && (1..=31).contains(&day),
            "{today}"
        );
        let long = strftime_now("%B".into());
        assert_eq!(long, MONTHS[month - 1]);
        assert_eq!(strftime_now("%b".into()), long[..3]);
        assert_eq!(
            strftime_now("%d %m".into()),
            format!("{} {}", parts[2], parts[1])
        );
    }
}
