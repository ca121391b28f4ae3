//! JSON written the way the chat template's `tojson` filter writes it
//! (Python's `json.dumps` with `ensure_ascii=False`): `", "` between items,
//! `": "` after keys, keys in their given order, non-ASCII text unescaped.

use serde_json::Value;

/// `value` as the template's `tojson` renders it.
pub fn to_template_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => out.push_str(&Value::String(s.clone()).to_string()),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push_str(": ");
                write_value(out, item);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_and_order_follow_python() {
        let v: Value =
            serde_json::from_str(r#"{"b": [1, 2.5, true, null], "a": {"x": "é\n\"q\""}}"#).unwrap();
        assert_eq!(
            to_template_json(&v),
            r#"{"b": [1, 2.5, true, null], "a": {"x": "é\n\"q\""}}"#
        );
    }

    #[test]
    fn a_plain_string_is_quoted() {
        assert_eq!(to_template_json(&Value::String("20 C".into())), "\"20 C\"");
    }
}
