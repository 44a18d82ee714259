//! A readable YAML writer for binned workspaces: mappings in block style, lists of numbers
//! (per-bin yields, uncertainties) on one line in flow style, as a person would write them.
//! The output is plain YAML 1.2 that the workspace reader parses back to the same spec.

use serde_json::Value;

use super::schema::BinnedWorkspaceSpec;

/// The workspace as YAML text.
pub fn to_yaml(spec: &BinnedWorkspaceSpec) -> String {
    let value = serde_json::to_value(spec).expect("the binned schema always serialises");
    let mut out = String::new();
    block(&value, 0, &mut out);
    out
}

/// Writes a mapping's entries at `indent`.
fn block(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    let Value::Object(map) = value else {
        unreachable!("block() is called on mappings only");
    };
    for (key, item) in map {
        match item {
            Value::Object(inner) if !inner.is_empty() => {
                out.push_str(&format!("{pad}{key}:\n"));
                block(item, indent + 2, out);
            }
            Value::Array(items) if items.iter().any(|i| i.is_object()) => {
                out.push_str(&format!("{pad}{key}:\n"));
                for i in items {
                    list_item(i, indent + 2, out);
                }
            }
            _ => out.push_str(&format!("{pad}{key}: {}\n", flow(item))),
        }
    }
}

/// A list entry that is a mapping: on one line in flow style when short and flat (a modifier,
/// a parameter's settings), else `- ` then its entries, the first on the dash's line.
fn list_item(value: &Value, indent: usize, out: &mut String) {
    if let Value::Object(map) = value {
        let flat = map.values().all(|v| match v {
            Value::Object(_) => false,
            Value::Array(items) => items.iter().all(|i| !i.is_object()),
            _ => true,
        });
        let entries: Vec<String> = map
            .iter()
            .map(|(k, v)| format!("{k}: {}", flow(v)))
            .collect();
        let line = format!("{}- {{{}}}", " ".repeat(indent), entries.join(", "));
        if flat && line.len() <= 100 {
            out.push_str(&line);
            out.push('\n');
            return;
        }
    }
    let mut inner = String::new();
    block(value, indent + 2, &mut inner);
    let pad = " ".repeat(indent + 2);
    let first = inner.strip_prefix(&pad).unwrap_or(&inner);
    out.push_str(&format!("{}- {first}", " ".repeat(indent)));
}

/// A scalar or list of scalars on one line.
fn flow(value: &Value) -> String {
    match value {
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::String(s) => scalar_string(s),
        Value::Number(n) => match n.as_f64() {
            // Floats keep a decimal point so that they read back as numbers in any YAML.
            Some(x) if n.is_f64() && x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.1}"),
            _ => n.to_string(),
        },
        Value::Object(map) if map.is_empty() => "{}".to_string(),
        other => other.to_string(),
    }
}

/// Plain when unambiguous (a name), JSON-quoted otherwise (valid YAML double-quoted).
fn scalar_string(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c))
        && ![
            "true", "false", "null", "yes", "no", "on", "off", "y", "n", "~",
        ]
        .contains(&s.to_ascii_lowercase().as_str());
    if plain {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("strings serialise")
    }
}
