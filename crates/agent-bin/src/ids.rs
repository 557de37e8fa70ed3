//! The API's rule for container (and agent) ids: 1 to 128 of `[A-Za-z0-9_.-]`, not `.` or `..`.
//!
//! Ids become Docker names, labels and directory names, so anything else is refused at the edge
//! with the reason.

/// Longest id the API accepts.
pub const MAX_ID_LEN: usize = 128;

/// Checks an id against the API's rule; the error says why it is refused.
pub fn validate_id(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty (1 to 128 of A-Z a-z 0-9 _ . -)".into());
    }
    if value.len() > MAX_ID_LEN {
        return Err(format!(
            "is {} bytes long; at most {MAX_ID_LEN} are allowed",
            value.len()
        ));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "contains {bad:?}; only A-Z a-z 0-9 _ . - are allowed"
        ));
    }
    if value == "." || value == ".." {
        return Err(format!("`{value}` is not allowed"));
    }
    Ok(())
}

/// [`validate_id`] for `--agent-id`.
pub fn validate_agent_id(value: &str) -> Result<(), String> {
    validate_id(value).map_err(|e| format!("agent id `{value}` {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_alphabet_up_to_128() {
        for ok in ["a", "task-1", "A.b_c-9", &"x".repeat(128), "...", ".a", "-"] {
            validate_id(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn refuses_everything_else_with_the_reason() {
        assert!(validate_id("").unwrap_err().contains("empty"));
        assert!(validate_id(&"x".repeat(129))
            .unwrap_err()
            .contains("129 bytes"));
        assert!(validate_id(".").unwrap_err().contains("not allowed"));
        assert!(validate_id("..").unwrap_err().contains("not allowed"));
        assert!(validate_id("a/b").unwrap_err().contains("'/'"));
        assert!(validate_id("a b").unwrap_err().contains("' '"));
        assert!(validate_id("é").unwrap_err().contains("'é'"));
        assert!(validate_id("a\0").unwrap_err().contains("'\\0'"));
    }
}
