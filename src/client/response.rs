//! Reading mParticle's answers: the `errors` list and which item each error names. Pure.

use crate::error::Rejection;

/// One entry of an answer's `errors` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) code: Option<String>,
    pub(crate) message: Option<String>,
}

/// The `errors` of an answer body (`{"errors":[{"code":…,"message":…}]}`); empty when the body
/// has none or is not JSON.
pub(crate) fn parse_errors(body: &[u8]) -> Vec<ApiError> {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let Some(errors) = doc.get("errors").and_then(|e| e.as_array()) else {
        return Vec::new();
    };
    errors
        .iter()
        .map(|e| ApiError {
            code: e.get("code").and_then(|c| c.as_str()).map(str::to_owned),
            message: e.get("message").and_then(|m| m.as_str()).map(str::to_owned),
        })
        .collect()
}

/// The first error's code and message as a rejection with `status`.
pub(crate) fn rejection(status: u16, body: &[u8]) -> Rejection {
    let first = parse_errors(body).into_iter().next();
    match first {
        Some(e) => Rejection::new(status, e.code, e.message),
        None => Rejection::new(status, None, None),
    }
}

/// The index of the bulk item an mParticle message names: `Path '[3].events[0]…'`,
/// `path "$[3]"`, or a message that starts with `[3]`.
pub(crate) fn item_index(message: &str) -> Option<usize> {
    let lower = message.to_ascii_lowercase();
    let rest = match lower.find("path") {
        Some(at) => &message[at + 4..],
        None => message,
    };
    let rest = rest.trim_start_matches([' ', ':', '=', '\'', '"', '`', '$']);
    let inner = rest.strip_prefix('[')?;
    let end = inner.find(']')?;
    let digits = &inner[..end];
    if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// What a 2xx answer with `errors` says about the items of its request.
#[derive(Debug, PartialEq)]
pub(crate) struct Attribution {
    /// Items named by an error, with the first error that named them.
    pub(crate) rejected: Vec<(usize, Rejection)>,
    /// Errors that name no item of this request.
    pub(crate) unattributed: usize,
}

/// Attributes `errors` to the `items` of a request answered with `status`. A request with one
/// item owns every error.
pub(crate) fn attribute(status: u16, errors: Vec<ApiError>, items: usize) -> Attribution {
    let mut rejected: Vec<(usize, Rejection)> = Vec::new();
    let mut unattributed = 0;
    for e in errors {
        let index = if items == 1 {
            Some(0)
        } else {
            e.message
                .as_deref()
                .and_then(item_index)
                .filter(|&i| i < items)
        };
        match index {
            Some(i) if rejected.iter().any(|(j, _)| *j == i) => {}
            Some(i) => rejected.push((i, Rejection::new(status, e.code, e.message))),
            None => unattributed += 1,
        }
    }
    rejected.sort_by_key(|(i, _)| *i);
    Attribution {
        rejected,
        unattributed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_item_indices() {
        assert_eq!(
            item_index("Path '[3].events[0].data.event_name' is required"),
            Some(3)
        );
        assert_eq!(item_index("path: \"$[12]\" bad"), Some(12));
        assert_eq!(item_index("[0].user_identities: invalid"), Some(0));
        assert_eq!(
            item_index("Required event field \"event_type\" is missing or empty."),
            None
        );
        assert_eq!(item_index("Path 'events[0]'"), None);
        assert_eq!(item_index("Path '[x]'"), None);
        assert_eq!(item_index("Path '[99999999999]'"), None);
        assert_eq!(item_index("Path '["), None);
        assert_eq!(item_index(""), None);
    }

    #[test]
    fn parses_errors_leniently() {
        let body = br#"{"errors":[{"code":"BAD_REQUEST","message":"Path '[1]' x"},{"code":7}]}"#;
        let errors = parse_errors(body);
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].code.as_deref(), Some("BAD_REQUEST"));
        assert_eq!(errors[1].code, None);
        assert!(parse_errors(b"").is_empty());
        assert!(parse_errors(b"<html>").is_empty());
        assert!(parse_errors(b"{}").is_empty());
        assert!(parse_errors(br#"{"errors":"no"}"#).is_empty());
    }

    #[test]
    fn attributes_errors_to_items() {
        let e = |m: &str| ApiError {
            code: Some("BAD_REQUEST".into()),
            message: Some(m.into()),
        };
        let a = attribute(
            202,
            vec![
                e("Path '[3].x' bad"),
                e("Path '[1]' bad"),
                e("Path '[3].y' bad"),
            ],
            5,
        );
        assert_eq!(
            a.rejected.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            vec![1, 3]
        );
        assert_eq!(a.unattributed, 0);
        assert_eq!(a.rejected[0].1.status, 202);
        let a = attribute(202, vec![e("Path '[7]' bad"), e("something")], 5);
        assert!(a.rejected.is_empty());
        assert_eq!(a.unattributed, 2);
        let a = attribute(202, vec![e("something")], 1);
        assert_eq!(a.rejected.len(), 1);
    }

    #[test]
    fn rejection_keeps_code_only_in_display() {
        let r = rejection(
            400,
            br#"{"errors":[{"code":"BAD_REQUEST","message":"bad value jane@example.com"}]}"#,
        );
        assert_eq!(r.code.as_deref(), Some("BAD_REQUEST"));
        assert!(!r.to_string().contains("jane"));
        assert!(!format!("{r:?}").contains("jane"));
        let r = rejection(401, b"Unauthorized");
        assert_eq!((r.status, r.code), (401, None));
        let r = rejection(400, br#"{"errors":[{"code":"<script>","message":"x"}]}"#);
        assert_eq!(r.code, None);
    }
}
