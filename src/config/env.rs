//! `${NAME}` and `${NAME:-default}` substitution from the environment, done on the raw text
//! before YAML parsing so that any scalar (numbers included) can come from the environment.
//!
//! Substitution is skipped inside comments, so a commented-out `${SECRET}` does not demand a
//! variable. A value that contains a line break is refused: it could change the structure of
//! the document (YAML injection through the environment) and would shift every later line
//! number in error messages.

use super::error::{ConfigError, Position};

/// Replaces every `${…}` outside comments using `lookup`.
pub(crate) fn substitute(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let code_end = comment_start(line).unwrap_or(line.len());
        let (code, comment) = line.split_at(code_end);
        let mut rest = code;
        let mut column = 1u64;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            column += rest[..start].chars().count() as u64;
            let position = Some(Position {
                line: index as u64 + 1,
                column,
            });
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(ConfigError::new(
                    "",
                    position,
                    "unterminated `${` (write `${NAME}`)",
                ));
            };
            let expr = &after[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (expr, None),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(ConfigError::new(
                    "",
                    position,
                    format!("`${{{expr}}}` is not a valid variable reference"),
                ));
            }
            let value = match (lookup(name), default) {
                (Some(value), _) => value,
                (None, Some(default)) => default.to_owned(),
                (None, None) => {
                    return Err(ConfigError::new(
                        "",
                        position,
                        format!(
                            "environment variable {name} is not set (use ${{{name}:-default}} for a default)"
                        ),
                    ));
                }
            };
            if value.contains(['\n', '\r']) {
                return Err(ConfigError::new(
                    "",
                    position,
                    format!("environment variable {name} contains a line break"),
                ));
            }
            out.push_str(&value);
            column += expr.chars().count() as u64 + 3;
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out.push_str(comment);
    }
    Ok(out)
}

/// Byte offset of a YAML comment (`#` at line start or after white space, outside quotes).
fn comment_start(line: &str) -> Option<usize> {
    let mut quote: Option<u8> = None;
    let mut previous = b' ';
    for (i, b) in line.bytes().enumerate() {
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b == b'#' && (previous == b' ' || previous == b'\t') => return Some(i),
            None => {}
        }
        previous = b;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "NL" => Some("x\ny".into()),
            _ => None,
        }
    }

    #[test]
    fn replaces_set_variables_and_defaults() {
        let out = substitute("a: ${A}\nb: \"${B:-dflt}\"\nc: ${B:-}\n", env).unwrap();
        assert_eq!(out, "a: alpha\nb: \"dflt\"\nc: \n");
    }

    #[test]
    fn unset_variable_names_line_and_column() {
        let err = substitute("a: 1\nb: x${MISSING}\n", env).unwrap_err();
        assert_eq!(err.position, Some(Position { line: 2, column: 5 }));
        assert!(err.reason.contains("MISSING"), "{}", err.reason);
    }

    #[test]
    fn comments_are_not_substituted() {
        let out = substitute("a: 1 # ${MISSING}\n# ${ALSO_MISSING}\n", env).unwrap();
        assert_eq!(out, "a: 1 # ${MISSING}\n# ${ALSO_MISSING}\n");
    }

    #[test]
    fn hash_inside_quotes_is_not_a_comment() {
        let out = substitute("a: \"x #${A}\"\n", env).unwrap();
        assert_eq!(out, "a: \"x #alpha\"\n");
    }

    #[test]
    fn line_breaks_in_values_are_refused() {
        assert!(substitute("a: ${NL}\n", env).is_err());
        assert!(substitute("a: ${A\n", env).is_err());
        assert!(substitute("a: ${A-B}\n", env).is_err());
    }
}
