-- ============================================================
-- Priority 1: CRITICAL - Workflow Core Integrity
-- ============================================================

-- Workflow instances must reference valid config version
ALTER TABLE workflow_instances
ADD CONSTRAINT fk_workflow_instances_config_version
FOREIGN KEY (config_version_id)
REFERENCES config_versions(id)
ON DELETE RESTRICT
NOT VALID;  -- <-- Don't validate existing data yet

-- Workflow instances must belong to workspace
ALTER TABLE workflow_instances
ADD CONSTRAINT fk_workflow_instances_workspace
FOREIGN KEY (workspace_id)
REFERENCES workspaces(id)
ON DELETE RESTRICT
NOT VALID;

-- ============================================================
-- Priority 2: HIGH - Child Record Integrity
-- ============================================================

-- Workflow stages belong to workflow instance
ALTER TABLE workflow_stages
ADD CONSTRAINT fk_workflow_stages_workflow_instance
FOREIGN KEY (workflow_instance_id)
REFERENCES workflow_instances(id)
ON DELETE CASCADE
NOT VALID;

-- ATP submissions reference workflow
ALTER TABLE atp_submissions
ADD CONSTRAINT fk_atp_submissions_workflow_instance
FOREIGN KEY (workflow_instance_id)
REFERENCES workflow_instances(id)
ON DELETE RESTRICT
NOT VALID;

-- ATP submission documents belong to submission
ALTER TABLE atp_submission_documents
ADD CONSTRAINT fk_atp_submission_documents_submission
FOREIGN KEY (submission_id)
REFERENCES atp_submissions(id)
ON DELETE CASCADE
NOT VALID;

-- Punchlists reference workflow
ALTER TABLE punchlists
ADD CONSTRAINT fk_punchlists_workflow_instance
FOREIGN KEY (workflow_instance_id)
REFERENCES workflow_instances(id)
ON DELETE RESTRICT
NOT VALID;

-- Punchlist items belong to punchlist
ALTER TABLE punchlist_items
ADD CONSTRAINT fk_punchlist_items_punchlist
FOREIGN KEY (punchlist_id)
REFERENCES punchlists(id)
ON DELETE CASCADE
NOT VALID;

-- ============================================================
-- Priority 3: MEDIUM - Master Table Workspace Isolation
-- ============================================================

-- ATP scopes belong to workspace
ALTER TABLE atp_scope_master
ADD CONSTRAINT fk_atp_scope_master_workspace
FOREIGN KEY (workspace_id)
REFERENCES workspaces(id)
ON DELETE RESTRICT
NOT VALID;

-- Vendors belong to workspace
ALTER TABLE vendor_master
ADD CONSTRAINT fk_vendor_master_workspace
FOREIGN KEY (workspace_id)
REFERENCES workspaces(id)
ON DELETE RESTRICT
NOT VALID;

-- Approval roles belong to workspace
ALTER TABLE approval_role_master
ADD CONSTRAINT fk_approval_role_master_workspace
FOREIGN KEY (workspace_id)
REFERENCES workspaces(id)
ON DELETE RESTRICT
NOT VALID;

-- Approval policies belong to workspace
ALTER TABLE approval_policy_master
ADD CONSTRAINT fk_approval_policy_master_workspace
FOREIGN KEY (workspace_id)
REFERENCES workspaces(id)
ON DELETE RESTRICT
NOT VALID;

-- Approval policy stages belong to policy
ALTER TABLE approval_policy_stages
ADD CONSTRAINT fk_approval_policy_stages_policy
FOREIGN KEY (approval_policy_id)
REFERENCES approval_policy_master(id)
ON DELETE CASCADE
NOT VALID;

-- Clusters belong to workspace
ALTER TABLE cluster_master
ADD CONSTRAINT fk_cluster_master_workspace
FOREIGN KEY (workspace_id)
REFERENCES workspaces(id)
ON DELETE RESTRICT
NOT VALID;

-- Cluster approvers belong to cluster
ALTER TABLE cluster_approver_master
ADD CONSTRAINT fk_cluster_approver_master_cluster
FOREIGN KEY (cluster_id)
REFERENCES cluster_master(id)
ON DELETE CASCADE
NOT VALID;

-- ============================================================
-- Priority 4: LOW - Runtime Integrity
-- ============================================================

-- Approver overrides reference workflow
ALTER TABLE approver_overrides
ADD CONSTRAINT fk_approver_overrides_workflow_instance
FOREIGN KEY (workflow_instance_id)
REFERENCES workflow_instances(id)
ON DELETE CASCADE
NOT VALID;

-- Workflow stage actions belong to stage
ALTER TABLE workflow_stage_actions
ADD CONSTRAINT fk_workflow_stage_actions_stage
FOREIGN KEY (stage_id)
REFERENCES workflow_stages(id)
ON DELETE CASCADE
NOT VALID;

-- ============================================================
-- Validation Phase (Can be done later)
-- ============================================================

-- Validate all constraints
-- Run these after migration, during maintenance window

ALTER TABLE workflow_instances
VALIDATE CONSTRAINT fk_workflow_instances_config_version;

ALTER TABLE workflow_instances
VALIDATE CONSTRAINT fk_workflow_instances_workspace;

ALTER TABLE workflow_stages
VALIDATE CONSTRAINT fk_workflow_stages_workflow_instance;

ALTER TABLE atp_submissions
VALIDATE CONSTRAINT fk_atp_submissions_workflow_instance;

ALTER TABLE atp_submission_documents
VALIDATE CONSTRAINT fk_atp_submission_documents_submission;

ALTER TABLE punchlists
VALIDATE CONSTRAINT fk_punchlists_workflow_instance;

ALTER TABLE punchlist_items
VALIDATE CONSTRAINT fk_punchlist_items_punchlist;

ALTER TABLE atp_scope_master
VALIDATE CONSTRAINT fk_atp_scope_master_workspace;

ALTER TABLE vendor_master
VALIDATE CONSTRAINT fk_vendor_master_workspace;

ALTER TABLE approval_role_master
VALIDATE CONSTRAINT fk_approval_role_master_workspace;

ALTER TABLE approval_policy_master
VALIDATE CONSTRAINT fk_approval_policy_master_workspace;

ALTER TABLE approval_policy_stages
VALIDATE CONSTRAINT fk_approval_policy_stages_policy;

ALTER TABLE cluster_master
VALIDATE CONSTRAINT fk_cluster_master_workspace;

ALTER TABLE cluster_approver_master
VALIDATE CONSTRAINT fk_cluster_approver_master_cluster;

ALTER TABLE approver_overrides
VALIDATE CONSTRAINT fk_approver_overrides_workflow_instance;

ALTER TABLE workflow_stage_actions
VALIDATE CONSTRAINT fk_workflow_stage_actions_stage;
