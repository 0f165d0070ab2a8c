//! Failure groups: messages that failed for the same reason share a
//! fingerprint, so 40,000 failures read as three problems, not 40,000 rows.
//!
//! Exceptions group by type + normalised message + top application frames;
//! broker dead letters by x-death reason + original route.

use sha2::{Digest, Sha256};

/// What a fingerprint is computed from; all of it is stored on the message,
/// so groups can be recomputed from the database alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct FailureFacts<'a> {
    pub queue: &'a str,
    pub reason: Option<&'a str>,
    pub stack_trace: Option<&'a str>,
    pub exception_type: Option<&'a str>,
    pub original_exchange: Option<&'a str>,
    pub original_routing_key: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// 16 hex digits, stable across releases for the same inputs.
    pub id: String,
    /// What operators read: `IllegalStateException: Trade # rejected`.
    pub title: String,
}

/// Frames from frameworks and runtimes say how the call got there, not what failed.
const FRAMEWORK_PREFIXES: &[&str] = &[
    "org.springframework.",
    "java.",
    "javax.",
    "jdk.",
    "sun.",
    "com.sun.",
    "kotlin.",
    "kotlinx.",
    "reactor.",
    "io.micrometer.",
    "org.apache.",
    "com.rabbitmq.",
    "MassTransit.",
    "NServiceBus.",
    "System.",
    "Microsoft.",
];
const TOP_FRAMES: usize = 3;

/// The root cause's type from a Java or .NET stack trace: the last
/// `Caused by:` line, else the first line (`a.b.Type: message`).
pub fn exception_type_from_trace(trace: &str) -> Option<String> {
    let line = trace
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Caused by:"))
        .next_back()
        .or_else(|| trace.lines().next())?
        .trim();
    let ty = line.split(':').next()?.trim();
    let looks_like_type =
        !ty.is_empty() && !ty.contains(' ') && ty.chars().all(|c| c.is_alphanumeric() || "._$`+".contains(c));
    looks_like_type.then(|| ty.to_owned())
}

/// Application frames (`com.acme.Handler.on`), without line numbers: a
/// redeploy that shifts lines must not split a group.
fn top_frames(trace: &str) -> Vec<String> {
    trace
        .lines()
        .filter_map(|l| l.trim().strip_prefix("at "))
        .map(|f| {
            let f = f.split(" in ").next().unwrap_or(f); // .NET: "at X.Y() in file.cs:line 3"
            f.split('(').next().unwrap_or(f).trim().to_owned()
        })
        .filter(|f| !f.is_empty() && !FRAMEWORK_PREFIXES.iter().any(|p| f.starts_with(p)))
        .take(TOP_FRAMES)
        .collect()
}

/// Replaces what varies between occurrences of one failure: UUIDs, hex ids,
/// numbers, and quoted values.
pub fn normalise(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for token in split_keep(message) {
        out.push_str(&normalise_token(token));
    }
    out.trim().to_owned()
}

fn split_keep(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c.is_whitespace() || ",;:()[]{}=\"'".contains(c) {
            if start < i {
                parts.push(&s[start..i]);
            }
            parts.push(&s[i..i + c.len_utf8()]);
            start = i + c.len_utf8();
        }
    }
    if start < s.len() {
        parts.push(&s[start..]);
    }
    parts
}

fn normalise_token(t: &str) -> String {
    let is_uuid = t.len() == 36
        && t.chars().enumerate().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if is_uuid {
        return "<uuid>".into();
    }
    let digits = t.chars().filter(char::is_ascii_digit).count();
    if t.len() >= 8 && digits > 0 && t.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return "<id>".into();
    }
    if digits > 0 {
        // `order-42` → `order-#`, `3.14` → `#`
        let mut out = String::new();
        let mut in_number = false;
        for c in t.chars() {
            if c.is_ascii_digit() || (in_number && (c == '.' || c == '_')) {
                if !in_number {
                    out.push('#');
                }
                in_number = true;
            } else {
                in_number = false;
                out.push(c);
            }
        }
        return out;
    }
    t.to_owned()
}

fn short_type(ty: &str) -> &str {
    ty.rsplit('.').next().unwrap_or(ty)
}

pub fn fingerprint(f: &FailureFacts<'_>) -> Fingerprint {
    let exception_type = f
        .exception_type
        .map(str::to_owned)
        .or_else(|| f.stack_trace.and_then(exception_type_from_trace));
    let message = f.reason.map(normalise).unwrap_or_default();
    let (parts, title): (Vec<String>, String) = match (&exception_type, f.stack_trace) {
        (Some(ty), trace) => {
            let frames = trace.map(top_frames).unwrap_or_default();
            let title = if message.is_empty() {
                short_type(ty).to_owned()
            } else {
                format!("{}: {message}", short_type(ty))
            };
            let mut parts = vec!["exception".into(), ty.clone(), message];
            parts.extend(frames);
            (parts, title)
        }
        (None, Some(trace)) => {
            let frames = top_frames(trace);
            let title = if message.is_empty() {
                "exception".into()
            } else {
                message.clone()
            };
            let mut parts = vec!["exception".into(), message];
            parts.extend(frames);
            (parts, title)
        }
        (None, None) => {
            let exchange = f.original_exchange.unwrap_or("?");
            let key = f.original_routing_key.unwrap_or("");
            let reason = if message.is_empty() {
                "unknown reason".into()
            } else {
                message
            };
            let shown_exchange = if exchange.is_empty() {
                "(default)"
            } else {
                exchange
            };
            (
                vec!["dead-letter".into(), reason.clone(), exchange.into(), key.into()],
                format!("{reason} from {shown_exchange} / {key}"),
            )
        }
    };
    let mut h = Sha256::new();
    for p in &parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    let digest = h.finalize();
    Fingerprint {
        id: digest[..8].iter().map(|b| format!("{b:02x}")).collect(),
        title,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPRING: &str = "org.springframework.amqp.rabbit.support.ListenerExecutionFailedException: Listener threw exception
\tat org.springframework.amqp.rabbit.listener.AbstractMessageListenerContainer.wrapToListenerExecutionFailedExceptionIfNeeded(AbstractMessageListenerContainer.java:1771)
\tat org.springframework.amqp.rabbit.listener.AbstractMessageListenerContainer.doInvokeListener(AbstractMessageListenerContainer.java:1661)
Caused by: java.lang.IllegalStateException: Trade 42 rejected
\tat com.acme.trade.TradeService.book(TradeService.java:88)
\tat com.acme.trade.TradeListener.onTrade(TradeListener.java:42)
\tat java.base/jdk.internal.reflect.NativeMethodAccessorImpl.invoke0(Native Method)";

    fn spring(reason: &str, trace: &str) -> Fingerprint {
        fingerprint(&FailureFacts {
            queue: "trade-service.error.queue",
            reason: Some(reason),
            stack_trace: Some(trace),
            ..Default::default()
        })
    }

    #[test]
    fn spring_failures_group_by_root_cause_message_shape_and_app_frames() {
        let a = spring("Listener threw: Trade 42 rejected", SPRING);
        let b = spring(
            "Listener threw: Trade 977 rejected",
            &SPRING.replace("Trade 42", "Trade 977").replace(":88)", ":91)"),
        );
        assert_eq!(a, b, "ids, numbers and line numbers do not split a group");
        assert_eq!(a.title, "IllegalStateException: Listener threw: Trade # rejected");
        let other_frame = spring(
            "Listener threw: Trade 42 rejected",
            &SPRING.replace("TradeService.book", "TradeService.cancel"),
        );
        assert_ne!(a.id, other_frame.id);
        assert_eq!(a.id.len(), 16);
    }

    #[test]
    fn exception_type_prefers_the_root_cause() {
        assert_eq!(
            exception_type_from_trace(SPRING).as_deref(),
            Some("java.lang.IllegalStateException")
        );
        assert_eq!(
            exception_type_from_trace(
                "System.InvalidOperationException: nope\n   at Shop.Handler.Handle() in H.cs:line 3"
            )
            .as_deref(),
            Some("System.InvalidOperationException")
        );
        assert_eq!(exception_type_from_trace("just some words: here"), None);
    }

    #[test]
    fn masstransit_type_header_and_dotnet_frames() {
        let mt = |msg: &str| {
            fingerprint(&FailureFacts {
                queue: "billing_error",
                reason: Some(msg),
                exception_type: Some("System.TimeoutException"),
                stack_trace: Some(
                    "   at MassTransit.Pipe.Send()\n   at Billing.Charge.Consume() in C.cs:line 12",
                ),
                ..Default::default()
            })
        };
        assert_eq!(
            mt("Timeout after 30s for 9f1c2e4a-1111-2222-3333-444455556666"),
            mt("Timeout after 31s for 00000000-1111-2222-3333-444455556666")
        );
        assert_eq!(mt("x").title, "TimeoutException: x");
    }

    #[test]
    fn dead_letters_group_by_reason_and_route() {
        let dl = |reason: &str, ex: &str, rk: &str| {
            fingerprint(&FailureFacts {
                queue: "orders.dlq",
                reason: Some(reason),
                original_exchange: Some(ex),
                original_routing_key: Some(rk),
                ..Default::default()
            })
        };
        assert_eq!(
            dl("rejected", "orders.x", "placed"),
            dl("rejected", "orders.x", "placed")
        );
        assert_ne!(
            dl("rejected", "orders.x", "placed").id,
            dl("expired", "orders.x", "placed").id
        );
        assert_ne!(
            dl("rejected", "orders.x", "placed").id,
            dl("rejected", "orders.x", "paid").id
        );
        assert_eq!(dl("expired", "", "work").title, "expired from (default) / work");
    }

    #[test]
    fn normalisation() {
        assert_eq!(
            normalise("Order 123 for user-9 failed"),
            "Order # for user-# failed"
        );
        assert_eq!(normalise("id 550e8400-e29b-41d4-a716-446655440000"), "id <uuid>");
        assert_eq!(normalise("hash deadbeef01"), "hash <id>");
        assert_eq!(normalise("took 3.5s"), "took #s");
    }
}
