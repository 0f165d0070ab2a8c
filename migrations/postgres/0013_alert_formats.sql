-- Alert rules say how they notify (`json`, `slack`, `teams`,
-- `alertmanager`, `email`), and to whom an e-mail goes (addresses, one per
-- line). A `new_group` rule announces the groups whose first message is
-- above `created_through` (the highest message id when the rule was made),
-- looking from a little below `seen_through` (where its last look ended:
-- ids may commit out of order) and recording each group it announced, so a
-- group is announced once whichever instance looks.
ALTER TABLE alert_rules ADD COLUMN format TEXT NOT NULL DEFAULT 'json'
    CHECK (format IN ('json', 'slack', 'teams', 'alertmanager', 'email'));
ALTER TABLE alert_rules ADD COLUMN email_to TEXT NOT NULL DEFAULT '';
ALTER TABLE alert_rules ADD COLUMN created_through BIGINT NOT NULL DEFAULT 0;
ALTER TABLE alert_rules ADD COLUMN seen_through BIGINT NOT NULL DEFAULT 0;
CREATE TABLE alert_announced (
    rule_id BIGINT  NOT NULL REFERENCES alert_rules (id) ON DELETE CASCADE,
    key     TEXT    NOT NULL,
    at      BIGINT  NOT NULL,
    PRIMARY KEY (rule_id, key)
);
