//! Paged lists: every list call answers at most a page, in a stable key
//! order, with a token that resumes after the last key it gave.

use theia::model::FieldError;

use crate::error::ApiError;

/// Items in a page when the caller does not say.
pub const DEFAULT_PAGE: usize = 100;
/// The most items in one page, whatever the caller asks.
pub const MAX_PAGE: usize = 1000;

/// One page asked for: its size, and the key it starts after.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    size: usize,
    after: Option<String>,
}

impl PageRequest {
    /// Reads `page_size` and `page_token` as a list request carries them.
    pub fn new(page_size: u32, page_token: &str) -> Result<Self, ApiError> {
        let size = match usize::try_from(page_size).unwrap_or(MAX_PAGE) {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let bad = || {
                FieldError::new(
                    "page_token",
                    "is not a next_page_token from an earlier answer",
                )
            };
            let bytes = hex::decode(page_token).map_err(|_| bad())?;
            Some(String::from_utf8(bytes).map_err(|_| bad())?)
        };
        Ok(Self { size, after })
    }

    /// How many items the page holds at most.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The key the page starts after; none for the first page.
    pub fn after(&self) -> Option<&str> {
        self.after.as_deref()
    }

    /// The page of `items` (in ascending key order) and the token for the
    /// next one (empty when this is the last).
    pub fn take<T>(&self, items: impl IntoIterator<Item = (String, T)>) -> (Vec<T>, String) {
        let mut rest = items
            .into_iter()
            .skip_while(|(key, _)| self.after.as_ref().is_some_and(|a| key <= a))
            .peekable();
        let mut page = Vec::with_capacity(self.size.min(64));
        let mut last = None;
        while page.len() < self.size {
            let Some((key, item)) = rest.next() else {
                break;
            };
            page.push(item);
            last = Some(key);
        }
        let next = match (rest.peek(), last) {
            (Some(_), Some(last)) => hex::encode(last),
            _ => String::new(),
        };
        (page, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<(String, usize)> {
        (0..n).map(|i| (format!("k{i:04}"), i)).collect()
    }

    #[test]
    fn pages_cover_everything_once_in_order() {
        let items = keys(250);
        let mut seen = Vec::new();
        let mut token = String::new();
        let mut pages = 0;
        loop {
            let page = PageRequest::new(100, &token).unwrap();
            let (got, next) = page.take(items.clone());
            pages += 1;
            seen.extend(got);
            if next.is_empty() {
                break;
            }
            token = next;
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, (0..250).collect::<Vec<_>>());
    }

    #[test]
    fn sizes_have_a_default_and_a_ceiling() {
        let (got, next) = PageRequest::new(0, "").unwrap().take(keys(150));
        assert_eq!((got.len(), next.is_empty()), (DEFAULT_PAGE, false));
        let (got, _) = PageRequest::new(u32::MAX, "").unwrap().take(keys(1500));
        assert_eq!(got.len(), MAX_PAGE);
        let (got, next) = PageRequest::new(10, "").unwrap().take(keys(10));
        assert_eq!(
            (got.len(), next),
            (10, String::new()),
            "exactly a page: no next"
        );
        let (got, next) = PageRequest::new(10, "").unwrap().take(keys(0));
        assert!(got.is_empty() && next.is_empty());
    }

    #[test]
    fn a_token_not_made_here_is_refused() {
        for bad in ["zz", "not hex", "ff"] {
            let err = PageRequest::new(10, bad).unwrap_err();
            assert!(err.to_string().starts_with("page_token:"), "{bad}: {err}");
        }
        // A token whose key is gone (deleted meanwhile) still resumes after it.
        let token = hex::encode("k0004x");
        let (got, _) = PageRequest::new(2, &token).unwrap().take(keys(10));
        assert_eq!(got, vec![5, 6]);
    }
}
