-- APMS demo schema (the application's "master tables" migration, before the FK
-- rollout). Text ids filled with gen_random_uuid()::text, CHECK constraints
-- on statuses and categories, one partial unique index, and exactly one
-- foreign key (config_versions.workspace_id -> workspaces) — so the
-- stats table reads "Foreign Keys: 1" before the rollout. None of the 16 foreign keys of migration.sql
-- exist yet. Some FK columns are indexed, some deliberately are not, so the
-- index check has something to recommend. Runs on an empty database.

CREATE TABLE workspaces (
    id          text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    code        text NOT NULL UNIQUE,
    name        text NOT NULL,
    status      text NOT NULL DEFAULT 'ACTIVE',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chk_workspaces_status CHECK (status IN ('ACTIVE', 'INACTIVE', 'ARCHIVED')),
    CONSTRAINT chk_workspaces_code CHECK (code ~ '^[A-Z0-9][A-Z0-9_-]*$')
);

CREATE TABLE config_versions (
    id              text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    workspace_id    text NOT NULL,
    version_number  integer NOT NULL,
    status          text NOT NULL DEFAULT 'DRAFT',
    description     text,
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    activated_at    timestamptz,
    CONSTRAINT chk_config_versions_status CHECK (status IN ('DRAFT', 'ACTIVE', 'SUPERSEDED', 'ARCHIVED')),
    CONSTRAINT chk_config_versions_version CHECK (version_number > 0),
    CONSTRAINT uq_config_versions_workspace_version UNIQUE (workspace_id, version_number),
    -- The one foreign key that already exists before the rollout.
    CONSTRAINT fk_config_versions_workspace FOREIGN KEY (workspace_id) REFERENCES workspaces(id) ON DELETE RESTRICT
);
-- The application's partial unique index: at most one ACTIVE config per workspace.
CREATE UNIQUE INDEX uq_config_versions_one_active ON config_versions (workspace_id) WHERE status = 'ACTIVE';

CREATE TABLE atp_scope_master (
    id            text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    workspace_id  text NOT NULL,
    code          text NOT NULL,
    name          text NOT NULL,
    atp_category  text NOT NULL,
    is_active     boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chk_atp_scope_master_category CHECK (atp_category IN ('HARDWARE', 'SOFTWARE', 'BOTH')),
    CONSTRAINT uq_atp_scope_master_code UNIQUE (workspace_id, code)
);

CREATE TABLE vendor_master (
    id            text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    workspace_id  text NOT NULL,
    code          text NOT NULL,
    name          text NOT NULL,
    vendor_type   text NOT NULL DEFAULT 'CONTRACTOR',
    status        text NOT NULL DEFAULT 'ACTIVE',
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chk_vendor_master_type CHECK (vendor_type IN ('CONTRACTOR', 'OEM', 'SUBCONTRACTOR')),
    CONSTRAINT chk_vendor_master_status CHECK (status IN ('ACTIVE', 'INACTIVE'))
);
-- vendor_master.workspace_id deliberately has no index.

CREATE TABLE approval_role_master (
    id            text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    workspace_id  text NOT NULL,
    role_code     text NOT NULL,
    role_name     text NOT NULL,
    level         integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chk_approval_role_master_level CHECK (level BETWEEN 1 AND 10),
    CONSTRAINT chk_approval_role_master_code CHECK (role_code <> ''),
    CONSTRAINT uq_approval_role_master_code UNIQUE (workspace_id, role_code)
);

CREATE TABLE approval_policy_master (
    id            text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    workspace_id  text NOT NULL,
    name          text NOT NULL,
    atp_category  text NOT NULL,
    status        text NOT NULL DEFAULT 'ACTIVE',
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chk_approval_policy_master_category CHECK (atp_category IN ('HARDWARE', 'SOFTWARE', 'BOTH')),
    CONSTRAINT chk_approval_policy_master_status CHECK (status IN ('ACTIVE', 'INACTIVE', 'ARCHIVED'))
);
CREATE INDEX idx_approval_policy_master_workspace ON approval_policy_master (workspace_id);

CREATE TABLE approval_policy_stages (
    id                  text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    approval_policy_id  text NOT NULL,
    stage_number        integer NOT NULL,
    stage_name          text NOT NULL,
    approval_role_id    text,
    sla_hours           integer NOT NULL DEFAULT 48,
    CONSTRAINT chk_approval_policy_stages_number CHECK (stage_number > 0),
    CONSTRAINT chk_approval_policy_stages_sla CHECK (sla_hours > 0),
    CONSTRAINT uq_approval_policy_stages_number UNIQUE (approval_policy_id, stage_number)
);

CREATE TABLE cluster_master (
    id            text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    workspace_id  text NOT NULL,
    code          text NOT NULL,
    name          text NOT NULL,
    region        text,
    status        text NOT NULL DEFAULT 'ACTIVE',
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chk_cluster_master_status CHECK (status IN ('ACTIVE', 'INACTIVE'))
);
-- cluster_master.workspace_id deliberately has no index.

CREATE TABLE cluster_approver_master (
    id            text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    cluster_id    text NOT NULL,
    approval_role_id text,
    user_id       text NOT NULL,
    is_primary    boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chk_cluster_approver_master_user CHECK (user_id <> '')
);
-- cluster_approver_master.cluster_id deliberately has no index.

CREATE TABLE workflow_instances (
    id                    text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    workspace_id          text NOT NULL,
    config_version_id     text NOT NULL,
    approval_policy_id    text NOT NULL,
    site_id               text NOT NULL,
    scope_id              text NOT NULL,
    atp_category          text NOT NULL,
    status                text NOT NULL DEFAULT 'IN_PROGRESS',
    current_stage_number  integer NOT NULL DEFAULT 1,
    created_by            text NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    completed_at          timestamptz,
    CONSTRAINT chk_workflow_instances_category CHECK (atp_category IN ('HARDWARE', 'SOFTWARE', 'BOTH')),
    CONSTRAINT chk_workflow_instances_status CHECK (status IN ('DRAFT', 'IN_PROGRESS', 'APPROVED', 'REJECTED', 'CANCELLED', 'COMPLETED')),
    CONSTRAINT chk_workflow_instances_stage CHECK (current_stage_number >= 1),
    CONSTRAINT chk_workflow_instances_completed CHECK (completed_at IS NULL OR status IN ('APPROVED', 'REJECTED', 'CANCELLED', 'COMPLETED'))
);
CREATE INDEX idx_workflow_instances_workspace ON workflow_instances (workspace_id);
CREATE INDEX idx_workflow_instances_site ON workflow_instances (site_id);
-- workflow_instances.config_version_id deliberately has no index.

CREATE TABLE workflow_stages (
    id                    text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    workflow_instance_id  text NOT NULL,
    stage_number          integer NOT NULL,
    stage_name            text NOT NULL,
    status                text NOT NULL DEFAULT 'PENDING',
    assigned_role_id      text,
    started_at            timestamptz,
    completed_at          timestamptz,
    CONSTRAINT chk_workflow_stages_status CHECK (status IN ('PENDING', 'IN_PROGRESS', 'APPROVED', 'REJECTED', 'SKIPPED')),
    CONSTRAINT chk_workflow_stages_number CHECK (stage_number > 0)
);
CREATE INDEX idx_workflow_stages_instance ON workflow_stages (workflow_instance_id, stage_number);

CREATE TABLE workflow_stage_actions (
    id            text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    stage_id      text NOT NULL,
    action        text NOT NULL,
    actor_id      text NOT NULL,
    comment       text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chk_workflow_stage_actions_action CHECK (action IN ('APPROVE', 'REJECT', 'COMMENT', 'REASSIGN', 'ESCALATE'))
);
-- workflow_stage_actions.stage_id deliberately has no index.

CREATE TABLE atp_submissions (
    id                    text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    workflow_instance_id  text NOT NULL,
    site_id               text NOT NULL,
    atp_category          text NOT NULL,
    status                text NOT NULL DEFAULT 'SUBMITTED',
    submitted_by          text NOT NULL,
    submitted_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chk_atp_submissions_category CHECK (atp_category IN ('HARDWARE', 'SOFTWARE', 'BOTH')),
    CONSTRAINT chk_atp_submissions_status CHECK (status IN ('DRAFT', 'SUBMITTED', 'UNDER_REVIEW', 'APPROVED', 'REJECTED'))
);
CREATE INDEX idx_atp_submissions_workflow ON atp_submissions (workflow_instance_id);

CREATE TABLE atp_submission_documents (
    id              text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    submission_id   text NOT NULL,
    file_name       text NOT NULL,
    document_type   text NOT NULL,
    size_bytes      bigint NOT NULL DEFAULT 0,
    uploaded_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chk_atp_submission_documents_type CHECK (document_type IN ('PHOTO', 'PDF', 'SPREADSHEET', 'OTHER')),
    CONSTRAINT chk_atp_submission_documents_size CHECK (size_bytes >= 0)
);
-- atp_submission_documents.submission_id deliberately has no index.

CREATE TABLE punchlists (
    id                    text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    workflow_instance_id  text NOT NULL,
    status                text NOT NULL DEFAULT 'OPEN',
    created_by            text NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chk_punchlists_status CHECK (status IN ('OPEN', 'IN_PROGRESS', 'CLOSED'))
);
CREATE INDEX idx_punchlists_workflow ON punchlists (workflow_instance_id);

CREATE TABLE punchlist_items (
    id            text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    punchlist_id  text NOT NULL,
    description   text NOT NULL,
    severity      text NOT NULL DEFAULT 'MINOR',
    status        text NOT NULL DEFAULT 'OPEN',
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chk_punchlist_items_severity CHECK (severity IN ('CRITICAL', 'MAJOR', 'MINOR')),
    CONSTRAINT chk_punchlist_items_status CHECK (status IN ('OPEN', 'FIXED', 'VERIFIED', 'WAIVED'))
);
CREATE INDEX idx_punchlist_items_punchlist ON punchlist_items (punchlist_id);

CREATE TABLE approver_overrides (
    id                    text PRIMARY KEY DEFAULT gen_random_uuid()::text,
    workflow_instance_id  text NOT NULL,
    stage_number          integer NOT NULL,
    original_approver_id  text,
    override_approver_id  text NOT NULL,
    reason                text NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT chk_approver_overrides_stage CHECK (stage_number > 0),
    CONSTRAINT chk_approver_overrides_reason CHECK (length(reason) > 0)
);
-- approver_overrides.workflow_instance_id deliberately has no index.
