package slackbot

import "github.com/fkrollout/fkrollout/internal/notify"

// The event types are internal/notify's: the workflow builds a notify.Event at
// each transition and the Notify activity hands it to this package's Notifier
// (which implements notify.Notifier). They travel through Temporal, so they
// are plain JSON and carry no secrets; a MessageRef (channel + ts) is all the
// state Slack needs, and the workflow keeps it, which makes the notifier
// stateless across worker restarts. The aliases keep this package's API
// readable on its own.
type (
	EventKind       = notify.Kind
	Event           = notify.Event
	GateKind        = notify.GateKind
	MessageRef      = notify.MessageRef
	StartInfo       = notify.StartInfo
	Gate            = notify.Gate
	Choice          = notify.Choice
	RemediationData = notify.RemediationData
	OrphanReport    = notify.OrphanReport
	ImpactRow       = notify.ImpactRow
	PromotionData   = notify.PromotionData
	TestResult      = notify.TestResult
	PerfRow         = notify.PerfRow
	InvestigateData = notify.InvestigateData
	Figure          = notify.Figure
	// GateDecision is a recorded decision as the workflow keeps it (shown in
	// messages); Decision (interactions.go) is what a click asks for.
	GateDecision = notify.Decision
	RollbackInfo = notify.RollbackInfo
)

const (
	KindStarted     = notify.KindStarted
	KindPhase       = notify.KindPhase
	KindGateOpened  = notify.KindGateOpened
	KindGateDecided = notify.KindGateDecided
	KindRolledBack  = notify.KindRolledBack
	KindCompleted   = notify.KindCompleted
	KindFailed      = notify.KindFailed
	KindReport      = notify.KindReport

	GateRemediation = notify.GateRemediation
	GatePromotion   = notify.GatePromotion
	GateInvestigate = notify.GateInvestigate
	GateApproval    = notify.GateApproval
)

func overheadMS(p PerfRow) float64 { return p.WithFKsMS - p.BaselineMS }
