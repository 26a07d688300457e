//! Query strings of the API's GET operations, read strictly: an unknown name is refused (a
//! misspelt `index` must not silently prove entry 0, a misspelt `start` must not page from the
//! beginning), and a number that does not parse is named in the refusal.

use super::ApiError;
use serde::de::DeserializeOwned;

/// Parses the raw query string into `T` (a struct of `Option<String>` fields with
/// `deny_unknown_fields`); no query string reads as an empty one.
pub fn parse<T: DeserializeOwned>(raw: Option<&str>) -> Result<T, ApiError> {
    serde_urlencoded::from_str(raw.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("bad query string: {e}")))
}

/// A required, non-empty text parameter.
pub fn required<'a>(name: &str, value: Option<&'a str>) -> Result<&'a str, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ApiError::bad_request(format!("{name} is required")))
}

/// An optional unsigned number; `None` when absent.
pub fn number(name: &str, value: Option<&str>) -> Result<Option<u64>, ApiError> {
    value
        .map(|v| {
            v.parse().map_err(|_| {
                ApiError::bad_request(format!(
                    "{name} must be a whole number from 0 to {}",
                    u64::MAX
                ))
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct P {
        origin: Option<String>,
        start: Option<String>,
    }

    #[test]
    fn parameters_are_read_strictly() {
        let p: P = parse(Some("origin=a.example&start=7")).unwrap();
        assert_eq!(
            required("origin", p.origin.as_deref()).unwrap(),
            "a.example"
        );
        assert_eq!(number("start", p.start.as_deref()).unwrap(), Some(7));
        // A misspelt name, an empty required value and a number that does not parse are each
        // refused with the parameter's name, never read as a default.
        assert!(parse::<P>(Some("strat=7"))
            .unwrap_err()
            .message
            .contains("strat"));
        let empty = required("origin", Some("")).unwrap_err();
        assert_eq!(empty.status.as_u16(), 400);
        for bad in ["-1", "1e3", "", "18446744073709551616"] {
            let e = number("start", Some(bad)).unwrap_err();
            assert!(
                e.message.starts_with("start must be"),
                "{bad}: {}",
                e.message
            );
        }
        assert_eq!(parse::<P>(None).unwrap().origin, None);
    }
}
