//! The words an enum is written as (in the API, the database and the UI),
//! derived once by `strum` and checked against serde's, so a status, action
//! or kind is never spelled by hand in two places.

/// A stored word that names no known variant: reading it is an error,
/// never a guess at what it meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownWord {
    pub kind: &'static str,
    pub word: String,
}

impl std::fmt::Display for UnknownWord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown {} {:?}", self.kind, self.word)
    }
}

impl std::error::Error for UnknownWord {}

/// For an enum deriving `strum::IntoStaticStr` and `strum::VariantArray`
/// (with the same `serialize_all` as its serde `rename_all`): `ALL`,
/// `as_str`, `parse`, `Display`, and `TryFrom<String>` for reading a
/// stored column (`#[sqlx(try_from = "String")]`).
macro_rules! word {
    ($t:ident, $kind:literal) => {
        impl $t {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$t] = <$t as strum::VariantArray>::VARIANTS;

            pub fn as_str(self) -> &'static str {
                self.into()
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl TryFrom<String> for $t {
            type Error = $crate::model::UnknownWord;
            fn try_from(word: String) -> Result<Self, Self::Error> {
                Self::parse(&word).ok_or($crate::model::UnknownWord { kind: $kind, word })
            }
        }

        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use word;

#[cfg(test)]
mod tests {
    use super::super::*;

    /// serde's word and strum's must agree for every variant, or the API
    /// would write one word and the store read another.
    fn agree<T: serde::Serialize + Copy + Into<&'static str>>(all: &[T]) {
        for v in all {
            let serde = serde_json::to_value(v).unwrap();
            let strum: &'static str = (*v).into();
            assert_eq!(serde, serde_json::json!(strum));
        }
    }

    #[test]
    fn serde_and_strum_spell_every_variant_alike() {
        agree(MessageStatus::ALL);
        agree(HistoryAction::ALL);
        agree(JobAction::ALL);
        agree(JobState::ALL);
        agree(AuditAction::ALL);
        agree(AuditResult::ALL);
        agree(ConsumerState::ALL);
        agree(CaptureMode::ALL);
        agree(TapOriginal::ALL);
        agree(Severity::ALL);
        agree(AlertEvent::ALL);
        agree(QueueKind::ALL);
    }

    #[test]
    fn an_unknown_stored_word_is_an_error() {
        let e = JobState::try_from("runing".to_owned()).unwrap_err();
        assert_eq!(e.to_string(), "unknown job state \"runing\"");
        assert_eq!(
            MessageStatus::try_from("failed".to_owned()),
            Ok(MessageStatus::Failed)
        );
        assert!(HistoryAction::try_from("delete".to_owned()).is_err());
    }
}
