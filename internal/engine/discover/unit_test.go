package discover

import (
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/fkrollout/fkrollout/internal/engine/plan"
)

func TestTokens(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"customer_id", []string{"customer", "id"}},
		{"SupportRepId", []string{"support", "rep", "id"}},
		{"supportRepID", []string{"support", "rep", "id"}},
		{"HTTPServerId", []string{"http", "server", "id"}},
		{"Customer ID", []string{"customer", "id"}},
		{"order-line.no", []string{"order", "line", "no"}},
		{"x2Id", []string{"x2", "id"}},
	} {
		assert.Equal(t, tc.want, tokens(tc.in), tc.in)
	}
}

func TestSingular(t *testing.T) {
	for in, want := range map[string]string{
		"customers": "customer", "categories": "category", "addresses": "address", "boxes": "box",
		"statuses": "status", "people": "person", "status": "status", "bus": "bus", "analysis": "analysis",
		"media": "media", "invoice": "invoice", "matches": "match",
	} {
		assert.Equal(t, want, singular(in), in)
	}
}

func TestMatchName(t *testing.T) {
	for _, tc := range []struct {
		childTable, childCol, parentTable, parentCol string
		kind                                         string
		min, max                                     float64
	}{
		// The conventions.
		{"invoice", "customer_id", "customer", "customer_id", MatchExact, 1, 1},
		{"orders", "customer_id", "customers", "id", MatchTable, 0.95, 0.95},
		{"Invoice", "CustomerId", "Customer", "CustomerId", MatchExact, 1, 1},
		{"Order", "customerID", "Customers", "Id", MatchTable, 0.95, 0.95},
		{"orders", "id_customer", "customer", "id", MatchTable, 0.95, 0.95},
		{"orders", "customerid", "customer", "id", MatchTable, 0.95, 0.95},
		{"orders", "country_code", "countries", "code", MatchTable, 0.95, 0.95},
		{"lines", "product_sku", "products", "sku", MatchTable, 0.95, 0.95},
		{"people", "category", "categories", "id", MatchTable, 0.85, 0.86},
		// Affixes on either side, scored by how much they cover.
		{"workflow_instances", "scope_id", "atp_scope_master", "id", MatchAffix, 0.74, 0.76},
		{"cluster_approver_master", "cluster_id", "cluster_master", "id", MatchTable, 0.95, 0.95},
		{"tbl_orders", "customer_id", "tbl_customer", "id", MatchTable, 0.95, 0.95},
		{"invoices", "billing_customer_id", "customers", "id", MatchAffix, 0.74, 0.76},
		{"actions", "stage_id", "workflow_stages", "id", MatchAffix, 0.74, 0.76},
		{"actions", "stage_id", "approval_policy_stages", "id", MatchAffix, 0.69, 0.71},
		// Self-references need a role word.
		{"employee", "reports_to", "employee", "employee_id", MatchSelf, 0.8, 0.8},
		{"categories", "parent_id", "categories", "id", MatchSelf, 0.8, 0.8},
		{"staff", "managerId", "staff", "id", MatchSelf, 0.8, 0.8},
		{"employee", "employee_code", "employee", "employee_id", MatchNone, 0, 0},
		// Abbreviations and people.
		{"orders", "cust_id", "customers", "id", MatchAbbreviation, 0.7, 0.7},
		{"employees", "dept_id", "departments", "id", MatchAbbreviation, 0.7, 0.7},
		{"teams", "mgr_id", "managers", "id", MatchAbbreviation, 0.7, 0.7},
		{"tickets", "support_agent_id", "staff", "id", MatchPersonRole, 0.7, 0.7},
		{"customer", "support_id", "employee", "employee_id", MatchNone, 0, 0},
		{"lines", "po_id", "purchase_orders", "id", MatchAbbreviation, 0.7, 0.7},
		{"customer", "support_rep_id", "employee", "employee_id", MatchPersonRole, 0.7, 0.7},
		{"tickets", "created_by", "users", "id", MatchPersonRole, 0.7, 0.7},
		// No evidence, or the wrong head noun.
		{"customer", "support_rep_id", "media_type", "media_type_id", MatchNone, 0, 0},
		{"invoice_line", "invoice_line_id", "invoice", "invoice_id", MatchNone, 0, 0},
		{"orders", "customer_id", "customer_accounts", "id", MatchNone, 0, 0},
		{"orders", "approval_policy_id", "approval_policy_stages", "id", MatchNone, 0, 0},
		{"orders", "country_code", "countries", "id", MatchNone, 0, 0},
		{"orders", "user_id", "users", "user_id", MatchExact, 1, 1},
		{"orders", "id", "customers", "id", MatchNone, 0, 0},
		// Same non-generic column name in an unrelated table.
		{"order_lines", "order_id", "SalesOrder", "OrderId", MatchSameName, 0.8, 0.8},
	} {
		m := matchName(tc.childTable, tc.childCol, tc.parentTable, tc.parentCol)
		name := tc.childTable + "." + tc.childCol + " → " + tc.parentTable + "." + tc.parentCol
		assert.Equal(t, tc.kind, m.Kind, name)
		assert.GreaterOrEqual(t, m.Score, tc.min, name)
		assert.LessOrEqual(t, m.Score, tc.max, name)
	}
}

func TestConfidence(t *testing.T) {
	exact := NameMatch{Kind: MatchExact, Score: 1}
	role := NameMatch{Kind: MatchPersonRole, Score: 0.7}
	none := NameMatch{Kind: MatchNone}
	dense := func(d, in int64) dataEvidence { return dataEvidence{Distinct: d, Included: in, Chance: 1} }
	uuids := func(d, in int64) dataEvidence { return dataEvidence{Distinct: d, Included: in, Chance: 0} }
	ids := []Competitor{{Parent: "public.genre(genre_id)", Inclusion: 1, Estimated: true}}
	for _, tc := range []struct {
		name     string
		match    NameMatch
		data     dataEvidence
		comps    []Competitor
		min, max float64
	}{
		{"exact name, all values", exact, dense(100, 100), ids, 1, 1},
		{"exact name, 5% orphans still strong", exact, dense(100, 95), nil, 0.8, 0.9},
		{"exact name, half orphaned", exact, dense(100, 50), nil, 0, 0},
		{"one orphan value of four, but 1 row in 16", NameMatch{Kind: MatchTable, Score: 0.95},
			dataEvidence{Distinct: 4, Included: 3, Chance: 0.05, RowRatio: 15.0 / 16}, nil, 0.8, 0.82},
		{"one orphan value of four, counted on values only", NameMatch{Kind: MatchTable, Score: 0.95},
			dataEvidence{Distinct: 4, Included: 3, Chance: 0.05}, nil, 0.3, 0.36},
		{"role name, dense ids, all values", role, dense(3, 3), ids, 0.7, 0.7},
		{"role name outnamed by an exact parent", role, dense(3, 3), []Competitor{{Parent: "x", NameScore: 1, Inclusion: 1}}, 0.35, 0.35},
		{"equal names, equal fit: ambiguous", role, dense(3, 3), []Competitor{{Parent: "x", NameScore: 0.7, Inclusion: 1}}, 0.49, 0.49},
		{"better-named parent that does not fit is no competitor", role, dense(3, 3), []Competitor{{Parent: "x", NameScore: 1, Inclusion: 0.2}}, 0.7, 0.7},
		{"no name, dense integer ids prove nothing", none, dense(40, 40), nil, 0, 0},
		{"no name, many uuids in one parent", none, uuids(40, 40), nil, 0.89, 0.9},
		{"no name, uuids also in another parent", none, uuids(40, 40), []Competitor{{Parent: "x", Inclusion: 1}}, 0.26, 0.28},
		{"no name, one uuid proves little", none, uuids(1, 1), nil, 0.45, 0.46},
		{"name only, no values", exact, dataEvidence{}, nil, 0.6, 0.6},
	} {
		got, why := confidence(tc.match, tc.data, tc.comps)
		assert.GreaterOrEqual(t, got, tc.min, tc.name)
		assert.LessOrEqual(t, got, tc.max, tc.name)
		assert.NotEmpty(t, why, tc.name)
	}
}

// The numbered names must shorten exactly as PostgreSQL does; with label
// "fkey" objectName is plan.DefaultForeignKeyName, which is tested
// against PostgreSQL itself.
func TestObjectNameMatchesDefaultName(t *testing.T) {
	long := "a_really_long_table_name_that_goes_on_and_on_for_quite_a_while_x"
	for _, tc := range []struct {
		table string
		cols  []string
	}{
		{"track", []string{"album_id"}},
		{"Invoice", []string{"CustomerId"}},
		{long, []string{"customer_id"}},
		{"t", []string{long, long}},
		{"tábla_ñame_with_ünïcode_characters_that_is_long_enough_to_cut", []string{"çolumn_ñame_ünïcode"}},
	} {
		assert.Equal(t, plan.DefaultForeignKeyName(tc.table, tc.cols), objectName(tc.table, tc.cols, "fkey"), tc.table)
		assert.LessOrEqual(t, len(objectName(tc.table, tc.cols, "fkey12")), 63)
	}
	taken := map[string]bool{"track_album_id_fkey": true, "track_album_id_fkey1": true}
	assert.Equal(t, "track_album_id_fkey2", foreignKeyName("track", []string{"album_id"}, func(n string) bool { return taken[n] }))
}

func TestPriorityFor(t *testing.T) {
	for score, want := range map[float64]plan.Priority{
		1: plan.PriorityCritical, 0.75: plan.PriorityCritical, 0.6: plan.PriorityHigh,
		0.3: plan.PriorityMedium, 0.1: plan.PriorityLow,
	} {
		assert.Equal(t, want, priorityFor(score), score)
	}
}

func TestCompatible(t *testing.T) {
	col := func(oid uint32, cat string) *column { return &column{BaseType: oid, Category: cat} }
	assert.True(t, compatible(col(oidInt4, "N"), col(oidInt8, "N")))
	assert.True(t, compatible(col(oidVarchar, "S"), col(oidText, "S")))
	assert.True(t, compatible(col(oidUUID, "U"), col(oidUUID, "U")))
	assert.False(t, compatible(col(oidText, "S"), col(oidInt4, "N")))
	assert.False(t, compatible(col(16, "B"), col(16, "B")), "booleans are no keys")
	assert.False(t, compatible(col(701, "N"), col(701, "N")), "floats are no keys")
}
