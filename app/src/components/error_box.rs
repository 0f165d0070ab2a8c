use leptos::prelude::*;

use crate::model::ApiError;

/// A message for the operator (a form's own check, for instance).
#[component]
pub fn ErrorBox(message: String) -> impl IntoView {
    view! { <div class="error-box" role="alert">{message}</div> }
}

/// What the server refused or could not do, headed by its kind: not being
/// allowed, something gone, a change that lost a race and a publish whose
/// outcome is unknown each ask the operator for something different.
#[component]
pub fn ApiErrorBox(error: ApiError) -> impl IntoView {
    let (kind, title, hint) = match &error {
        ApiError::Forbidden(_) => (
            "forbidden",
            "Not allowed",
            "Your broker user lacks this permission; an administrator can grant it in RabbitMQ.",
        ),
        ApiError::NotFound(_) => (
            "not-found",
            "Not found",
            "It may have been purged or never existed.",
        ),
        ApiError::Conflict(_) => (
            "conflict",
            "Changed meanwhile",
            "Someone or something changed it first; reload to see where it stands.",
        ),
        ApiError::OutcomeUnknown(_) => (
            "outcome-unknown",
            "Outcome unknown",
            "The broker never confirmed the publish: it may have been delivered. It is flagged, \
             never retried on its own; check the consumer before replaying again.",
        ),
        ApiError::BadRequest(_) => ("bad-request", "Not accepted", ""),
        ApiError::Broker(_) => ("broker", "The broker refused", ""),
        ApiError::Unavailable(_) => ("unavailable", "Unavailable", "Try again in a moment."),
        ApiError::Internal => ("internal", "Something went wrong", ""),
    };
    let detail = error.detail().to_owned();
    view! {
        <div class=format!("error-box error-{kind}") role="alert" data-kind=kind>
            <strong class="error-title">{title}</strong>
            " "
            <span class="error-detail">{detail}</span>
            {(!hint.is_empty()).then(|| view! { <p class="error-hint">{hint}</p> })}
        </div>
    }
}
