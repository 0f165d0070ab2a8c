//! Ids as runs of consecutive values: how a capture batch's ids (which
//! another instance may interleave) and the ids the search indexer has not
//! seen committed yet are kept, a row per run instead of a row per id.

/// The runs of consecutive values in `ids` (ascending), as `(first, last)`.
pub(super) fn runs(ids: &[i64]) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &id in ids {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == id => *last = id,
            _ => out.push((id, id)),
        }
    }
    out
}

/// The runs of `first..=last` that are not in `present` (ascending, all
/// within the span).
pub(super) fn holes(first: i64, last: i64, present: &[i64]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut next = first;
    for &id in present {
        if id > next {
            out.push((next, id - 1));
        }
        next = id + 1;
    }
    if next <= last {
        out.push((next, last));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_interleaved_ids() {
        assert_eq!(runs(&[]), vec![]);
        assert_eq!(runs(&[4]), vec![(4, 4)]);
        assert_eq!(runs(&[1, 2, 3, 7, 8, 10]), vec![(1, 3), (7, 8), (10, 10)]);
    }

    #[test]
    fn holes_in_a_span() {
        assert_eq!(holes(1, 5, &[1, 2, 3, 4, 5]), vec![]);
        assert_eq!(holes(1, 5, &[]), vec![(1, 5)]);
        assert_eq!(holes(1, 10, &[3, 4, 8]), vec![(1, 2), (5, 7), (9, 10)]);
        assert_eq!(holes(3, 4, &[4]), vec![(3, 3)]);
    }
}
