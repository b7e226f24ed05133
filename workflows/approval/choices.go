package approval

import "github.com/fkrollout/fkrollout/internal/notify"

// Gate choices: the identifiers every client sends (CLI, Slack, the UI).
const (
	ChoiceApprove    = "approve"
	ChoiceReject     = "reject"
	ChoiceDelete     = "delete"
	ChoiceSetNull    = "set-null"
	ChoiceAcceptDebt = "accept-debt"
	ChoiceReAudit    = "re-audit"
	ChoiceAbort      = "abort"
	ChoiceContinue   = "continue"
	ChoiceRollback   = "rollback"
	ChoiceRetry      = "retry"
	// ChoiceSkip skips the constraint a failed step was for (recorded as
	// debt or, when it was never added, as skipped).
	ChoiceSkip = "skip"
	// ChoiceDeleteWithDependents deletes orphans together with every row
	// that references them, all copied to quarantine, children first.
	ChoiceDeleteWithDependents = "delete-with-dependents"
	// ChoiceApproveOverride promotes despite an open perf warning: it needs
	// a reason and is recorded as an override.
	ChoiceApproveOverride = "approve-override"
)

// Conservative choices stop, roll back or only re-read: one allowed person
// suffices, and the requester may choose them on their own rollout.
func Conservative(choice string) bool {
	switch choice {
	case ChoiceReject, ChoiceAbort, ChoiceReAudit, ChoiceRollback, ChoiceRetry:
		return true
	}
	return false
}

// choiceLabels are what buttons and menus show, and the confirmation a
// destructive choice asks for. The Slack handler renders them as they are.
func choiceLabels() map[string]notify.Choice {
	return map[string]notify.Choice{
		ChoiceApprove: {ID: ChoiceApprove, Label: "Approve", Style: "primary"},
		ChoiceReject:  {ID: ChoiceReject, Label: "Reject", Style: "danger", NeedsReason: true},
		ChoiceDelete:  {ID: ChoiceDelete, Label: "Delete orphans", Style: "danger", Confirm: "Delete the orphaned rows (copied to fkrollout.quarantine first)?"},
		ChoiceSetNull: {ID: ChoiceSetNull, Label: "Set NULL", Style: "danger", Confirm: "Set the orphaned references to NULL (originals copied to fkrollout.quarantine first)?"},
		ChoiceAcceptDebt: {ID: ChoiceAcceptDebt, Label: "Accept as debt", NeedsReason: true,
			Confirm: "Leave these constraints NOT VALID? New writes stay checked; existing orphans remain."},
		ChoiceReAudit: {ID: ChoiceReAudit, Label: "Re-audit (parents restored)"},
		ChoiceAbort: {ID: ChoiceAbort, Label: "Abort", Style: "danger", NeedsReason: true,
			Confirm: "Abort? Applied NOT VALID constraints are kept unless you roll back."},
		ChoiceContinue: {ID: ChoiceContinue, Label: "Continue", Style: "primary"},
		ChoiceRollback: {ID: ChoiceRollback, Label: "Roll back", Style: "danger", NeedsReason: true, Confirm: "Drop every constraint this rollout created?"},
		ChoiceRetry:    {ID: ChoiceRetry, Label: "Retry"},
		ChoiceSkip:     {ID: ChoiceSkip, Label: "Skip this constraint (record as debt)", NeedsReason: true},
		ChoiceDeleteWithDependents: {ID: ChoiceDeleteWithDependents, Label: "Delete with dependents", Style: "danger", NeedsReason: true,
			Confirm: "Delete the orphaned rows and every row that references them (all copied to fkrollout.quarantine first, children first)?"},
		ChoiceApproveOverride: {ID: ChoiceApproveOverride, Label: "Approve despite perf warning", Style: "danger", NeedsReason: true,
			Confirm: "The perf phase measured an overhead above the acceptable limit. Promote anyway?"},
	}
}

// Labels are the choices with their labels, styles and confirm texts, in
// the order given; an unknown id is shown as it is.
func Labels(ids []string) []notify.Choice {
	labels := choiceLabels()
	out := make([]notify.Choice, 0, len(ids))
	for _, id := range ids {
		c, ok := labels[id]
		if !ok {
			c = notify.Choice{ID: id, Label: id}
		}
		out = append(out, c)
	}
	return out
}

// Known reports whether id is a choice of some gate.
func Known(id string) bool {
	_, ok := choiceLabels()[id]
	return ok
}

// TimeoutChoices are the choices a gate of this kind can offer that a
// timeout may apply (approve-override needs a person; abort stops any
// gate); ok is false for an unknown kind.
func TimeoutChoices(kind notify.GateKind) (choices []string, ok bool) {
	choices, ok = map[notify.GateKind][]string{
		notify.GateRemediation: {ChoiceDelete, ChoiceSetNull, ChoiceAcceptDebt, ChoiceReAudit, ChoiceAbort},
		notify.GatePromotion:   {ChoiceApprove, ChoiceReject, ChoiceAbort},
		notify.GateApproval:    {ChoiceRetry, ChoiceContinue, ChoiceRollback, ChoiceAbort},
		notify.GateInvestigate: {ChoiceContinue, ChoiceRollback, ChoiceAbort},
	}[kind]
	return choices, ok
}

// Label is a choice's button label ("Set NULL"); an unknown id is shown as
// it is.
func Label(id string) string {
	return Labels([]string{id})[0].Label
}

// DefaultChoices are the choices of a gate of this kind whose notification
// carries none (notifications recorded before gates carried their choices).
func DefaultChoices(kind notify.GateKind) []notify.Choice {
	if ids, ok := TimeoutChoices(kind); ok {
		return Labels(ids)
	}
	return Labels([]string{ChoiceApprove, ChoiceReject})
}
