package plan

// IndexAdvice says whether a foreign key's referencing columns are indexed.
// Without such an index every DELETE/UPDATE of a parent key scans the child
// table: EXPLAIN shows a Seq Scan where an index scan was expected.
type IndexAdvice struct {
	FK      string   `json:"fk"`    // fk.ID(): schema.table.constraint
	Table   string   `json:"table"` // human schema.table
	Columns []string `json:"columns"`
	Covered bool     `json:"covered"`
	// Index is the existing covering index's name when Covered.
	Index string `json:"index,omitempty"`
	// Statement creates the missing index when not Covered.
	Statement string `json:"statement,omitempty"`
	// TableRef and IndexName carry the unquoted catalog names CreateIndex
	// needs (IndexName is the name Statement would create).
	TableRef  TableName `json:"table_ref"`
	IndexName string    `json:"index_name"`
}
