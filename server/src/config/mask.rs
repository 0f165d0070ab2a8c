//! The masking section: what readers must not see of failed messages.

use std::sync::Arc;

use crate::domain::Mask;

/// What users see of personal data in failed messages.
#[derive(Clone, Debug, clap::Args)]
#[command(next_help_heading = "Masking")]
pub struct MaskConfig {
    /// Comma-separated values to mask wherever a user reads them (pages,
    /// API, body downloads, exports, search): JSON paths into bodies
    /// (`$.card.number`, `$..iban`), headers (`header:x-user-email`) and
    /// regular expressions over text (`re:\b\d{13,19}\b`). A regex may
    /// hold commas; a comma starts a new rule only before `$`, `header:`
    /// or `re:`. Masked values are left out of the search index. Empty:
    /// nothing is masked.
    #[arg(long, env = "REDRIVE_MASK", default_value = "", value_parser = mask_rules)]
    pub mask: Arc<Mask>,

    /// Broker user tag whose holders see masked values as they are (each
    /// such view and export is audited).
    #[arg(long, env = "REDRIVE_UNMASK_TAG", default_value = "redrive-unmask")]
    pub unmask_tag: String,
}

fn mask_rules(s: &str) -> Result<Arc<Mask>, String> {
    Mask::parse(s).map(Arc::new).map_err(|e| e.to_string())
}
