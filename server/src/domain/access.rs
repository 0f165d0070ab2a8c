//! Who is asking, and what the broker lets them do.
//!
//! Redrive publishes and changes policies with its own credentials, so it
//! must refuse on the broker's behalf exactly what the broker would refuse
//! the user: the same tags, the same per-vhost permission regexes, matched
//! the way the broker matches them (unanchored PCRE; an empty pattern grants
//! nothing; the default exchange is named `amq.default`).

use std::collections::BTreeMap;
use std::sync::Arc;

use fancy_regex::Regex;

/// A broker user tag that means something to Redrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, strum::EnumString, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Tag {
    Administrator,
    Policymaker,
    Monitoring,
    Management,
}

impl Tag {
    fn parse(s: &str) -> Option<Self> {
        s.trim().parse().ok()
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// The tags of a management API answer that are not [`Tag`]s.
    pub fn others(value: &serde_json::Value) -> Vec<String> {
        let words: Vec<&str> = match value {
            serde_json::Value::Array(items) => items.iter().filter_map(|t| t.as_str()).collect(),
            serde_json::Value::String(s) => s.split(',').collect(),
            _ => Vec::new(),
        };
        words
            .into_iter()
            .map(str::trim)
            .filter(|t| !t.is_empty() && Self::parse(t).is_none())
            .map(str::to_owned)
            .collect()
    }

    /// Tags as the management API gives them: a list (3.9+) or one
    /// comma-separated string (older brokers). Unknown tags are dropped.
    pub fn parse_all(value: &serde_json::Value) -> Vec<Self> {
        let mut tags: Vec<Self> = match value {
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(|t| t.as_str())
                .filter_map(Self::parse)
                .collect(),
            serde_json::Value::String(s) => s.split(',').filter_map(Self::parse).collect(),
            _ => Vec::new(),
        };
        tags.sort();
        tags.dedup();
        tags
    }
}

/// One of the broker's three permission kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr)]
#[strum(serialize_all = "lowercase")]
pub enum Access {
    Configure,
    Write,
    Read,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A permission regex as the broker applies it.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: Option<Regex>,
}

impl Pattern {
    /// An empty pattern, or one that does not compile, grants nothing
    /// (refusing is the safe reading of a pattern Redrive cannot apply).
    pub fn new(source: &str) -> Self {
        let regex = if source.is_empty() {
            None
        } else {
            Regex::new(source).ok()
        };
        Self {
            source: source.to_owned(),
            regex,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Unanchored, like Erlang's `re:run/3`.
    pub fn allows(&self, resource: &str) -> bool {
        self.regex
            .as_ref()
            .is_some_and(|r| r.is_match(resource).unwrap_or(false))
    }
}

/// A user's permissions in one vhost.
#[derive(Debug, Clone)]
pub struct VhostPermissions {
    pub configure: Pattern,
    pub write: Pattern,
    pub read: Pattern,
}

impl VhostPermissions {
    fn pattern(&self, access: Access) -> &Pattern {
        match access {
            Access::Configure => &self.configure,
            Access::Write => &self.write,
            Access::Read => &self.read,
        }
    }
}

/// A signed-in user: name, tags, and permissions per vhost.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    pub tags: Vec<Tag>,
    /// The user's other tags, as the broker spells them: ones Redrive's
    /// settings name (`REDRIVE_UNMASK_TAG`).
    pub other_tags: Vec<String>,
    pub vhosts: BTreeMap<String, VhostPermissions>,
}

/// Why something was refused, said so the user knows what to ask for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("you have no permissions in vhost `{0}`")]
    NoVhost(String),
    #[error("your {access} permission in vhost `{vhost}` (`{pattern}`) does not match {resource}")]
    Resource {
        access: &'static str,
        vhost: String,
        pattern: String,
        resource: String,
    },
    #[error("this needs the broker tag {0}")]
    Tag(&'static str),
    #[error("your only broker tag is monitoring, which is read-only")]
    MonitoringOnly,
    #[error("Redrive runs read-only (REDRIVE_READ_ONLY)")]
    ReadOnly,
}

/// How the broker names the nameless default exchange in permission checks.
pub const DEFAULT_EXCHANGE: &str = "amq.default";

impl Principal {
    pub fn has(&self, tag: Tag) -> bool {
        self.tags.contains(&tag)
    }

    /// Holds the broker tag `name`, one of the broker's own or another.
    pub fn has_named(&self, name: &str) -> bool {
        self.other_tags.iter().any(|t| t == name) || self.tags.iter().any(|t| t.as_str() == name)
    }

    pub fn is_admin(&self) -> bool {
        self.has(Tag::Administrator)
    }

    /// Any permission at all in `vhost`: enough to see what is in it.
    pub fn can_see(&self, vhost: &str) -> bool {
        self.vhosts.contains_key(vhost)
    }

    /// The vhosts this user can see.
    pub fn visible_vhosts(&self) -> Vec<String> {
        self.vhosts.keys().cloned().collect()
    }

    pub fn require_vhost(&self, vhost: &str) -> Result<(), Denied> {
        if self.can_see(vhost) {
            Ok(())
        } else {
            Err(Denied::NoVhost(vhost.to_owned()))
        }
    }

    /// Any change at all: a `monitoring`-only user changes nothing.
    pub fn require_writer(&self) -> Result<(), Denied> {
        if self.tags == [Tag::Monitoring] {
            return Err(Denied::MonitoringOnly);
        }
        Ok(())
    }

    /// `access` on the exchange or queue `resource` in `vhost`, as the broker checks it.
    pub fn require(&self, vhost: &str, access: Access, kind: &str, resource: &str) -> Result<(), Denied> {
        self.require_writer()?;
        let perms = self
            .vhosts
            .get(vhost)
            .ok_or_else(|| Denied::NoVhost(vhost.to_owned()))?;
        let name = if kind == "exchange" && resource.is_empty() {
            DEFAULT_EXCHANGE
        } else {
            resource
        };
        let pattern = perms.pattern(access);
        if pattern.allows(name) {
            Ok(())
        } else {
            Err(Denied::Resource {
                access: access.as_str(),
                vhost: vhost.to_owned(),
                pattern: pattern.as_str().to_owned(),
                resource: format!("{kind} `{name}`"),
            })
        }
    }

    /// Policies and advisor fixes: `policymaker` or `administrator`.
    pub fn require_policymaker(&self) -> Result<(), Denied> {
        if self.has(Tag::Policymaker) || self.is_admin() {
            Ok(())
        } else {
            Err(Denied::Tag("policymaker or administrator"))
        }
    }

    /// Alert rules: `management` or any tag above it (not `monitoring` alone).
    pub fn require_management(&self) -> Result<(), Denied> {
        self.require_writer()?;
        if self.tags.is_empty() {
            return Err(Denied::Tag("management"));
        }
        Ok(())
    }
}

/// The signed-in user of one request, with where the request came from.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Arc<Principal>,
    pub source: Option<String>,
    /// The session's CSRF token when the caller signed in through the form;
    /// `None` for HTTP Basic, which no other site can make a browser send
    /// with a state change unless it also passes the `Origin` check.
    pub csrf: Option<String>,
}

impl Caller {
    pub fn user(&self) -> &str {
        &self.principal.user
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(tags: &[Tag], perms: &[(&str, &str, &str, &str)]) -> Principal {
        Principal {
            user: "u".into(),
            tags: tags.to_vec(),
            other_tags: Vec::new(),
            vhosts: perms
                .iter()
                .map(|(vh, c, w, r)| {
                    (
                        (*vh).to_owned(),
                        VhostPermissions {
                            configure: Pattern::new(c),
                            write: Pattern::new(w),
                            read: Pattern::new(r),
                        },
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn patterns_match_like_the_broker() {
        assert!(Pattern::new(".*").allows("anything"));
        assert!(Pattern::new("orders").allows("eu.orders.created"), "unanchored");
        assert!(!Pattern::new("^orders$").allows("orders.created"));
        assert!(!Pattern::new("").allows(""), "empty grants nothing");
        assert!(!Pattern::new("").allows("x"));
        assert!(!Pattern::new("(").allows("("), "a broken pattern grants nothing");
        assert!(Pattern::new("^(?!amq\\.).*").allows("orders"), "PCRE lookahead");
        assert!(!Pattern::new("^(?!amq\\.).*").allows("amq.direct"));
    }

    #[test]
    fn writes_follow_the_write_pattern_and_the_default_exchange_has_its_name() {
        let u = user(&[Tag::Management], &[("/", "", "^orders", ".*")]);
        assert!(u.require("/", Access::Write, "exchange", "orders").is_ok());
        let refused = u.require("/", Access::Write, "exchange", "").unwrap_err();
        assert!(refused.to_string().contains("amq.default"), "{refused}");
        assert!(refused.to_string().contains("^orders"), "{refused}");
        assert_eq!(
            u.require("other", Access::Write, "exchange", "orders"),
            Err(Denied::NoVhost("other".into()))
        );
    }

    #[test]
    fn monitoring_alone_is_read_only_and_tags_gate_policies_and_alerts() {
        let monitor = user(&[Tag::Monitoring], &[("/", ".*", ".*", ".*")]);
        assert!(monitor.can_see("/"));
        assert_eq!(
            monitor.require("/", Access::Write, "exchange", "x"),
            Err(Denied::MonitoringOnly)
        );
        assert!(monitor.require_management().is_err());
        assert!(monitor.require_policymaker().is_err());
        let policy = user(&[Tag::Policymaker], &[]);
        assert!(policy.require_policymaker().is_ok());
        assert!(policy.require_management().is_ok());
        let admin = user(&[Tag::Administrator, Tag::Monitoring], &[("/", "", ".*", "")]);
        assert!(admin.require_policymaker().is_ok());
        assert!(admin.require("/", Access::Write, "exchange", "x").is_ok());
    }

    #[test]
    fn tags_parse_from_a_list_or_a_string() {
        let list = serde_json::json!(["administrator", "impersonator", "monitoring"]);
        assert_eq!(Tag::parse_all(&list), vec![Tag::Administrator, Tag::Monitoring]);
        let string = serde_json::json!("policymaker, management");
        assert_eq!(Tag::parse_all(&string), vec![Tag::Policymaker, Tag::Management]);
        assert!(Tag::parse_all(&serde_json::json!(null)).is_empty());
        assert_eq!(Tag::others(&list), vec!["impersonator"]);
        assert_eq!(
            Tag::others(&serde_json::json!("management,redrive-unmask")),
            vec!["redrive-unmask"]
        );
    }
}
