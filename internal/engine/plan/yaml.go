package plan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// fileFK mirrors ForeignKey as written in a plan file: identifiers in SQL
// syntax (folded unless quoted), actions and priorities as loose text.
type fileFK struct {
	Name              string     `yaml:"name"`
	Table             TableName  `yaml:"table"`
	Columns           []string   `yaml:"columns,flow"`
	References        TableName  `yaml:"references"`
	RefColumns        []string   `yaml:"ref_columns,flow,omitempty"`
	OnDelete          fileAction `yaml:"on_delete,omitempty"`
	OnUpdate          fileAction `yaml:"on_update,omitempty"`
	Match             fileMatch  `yaml:"match,omitempty"`
	Deferrable        bool       `yaml:"deferrable,omitempty"`
	InitiallyDeferred bool       `yaml:"initially_deferred,omitempty"`
	Priority          *Priority  `yaml:"priority,omitempty"`
	Comment           string     `yaml:"comment,omitempty"`
}

type filePlan struct {
	Name        string        `yaml:"name,omitempty"`
	Lint        *LintOptions  `yaml:"lint,omitempty"`
	Expect      *Expectations `yaml:"expect,omitempty"`
	ForeignKeys []fileFK      `yaml:"foreign_keys"`
}

type fileAction Action

func (a *fileAction) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: referential action must be a string", n.Line)
	}
	v, err := ParseAction(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*a = fileAction(v)
	return nil
}

type fileMatch MatchType

func (m *fileMatch) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: match must be a string", n.Line)
	}
	switch v := MatchType(strings.ToUpper(strings.TrimSpace(n.Value))); v {
	case "", MatchSimple, MatchFull, MatchPartial:
		*m = fileMatch(v)
		return nil
	}
	return fmt.Errorf("line %d: unknown match type %q (want SIMPLE or FULL)", n.Line, n.Value)
}

// MatchPartial is accepted by the parsers only so Lint can reject it with a
// clear message; PostgreSQL does not implement it.
const MatchPartial MatchType = "PARTIAL"

// ParseYAML reads a plan file in YAML or JSON (Parse with FormatYAML; see
// the package doc for the format). Unknown fields are errors; tables without
// a schema get DefaultSchema; a foreign key without a priority is CRITICAL.
func ParseYAML(data []byte) (Plan, error) {
	return parsePlanFile(data)
}

func parsePlanFile(data []byte) (Plan, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var fp filePlan
	if err := dec.Decode(&fp); err != nil {
		if errors.Is(err, io.EOF) {
			return Plan{}, fmt.Errorf("parse plan: %w", ErrEmptyPlan)
		}
		return Plan{}, fmt.Errorf("parse plan: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Plan{}, errors.New("parse plan: more than one YAML document")
	}
	p := Plan{Name: fp.Name}
	if fp.Lint != nil {
		opts, err := normalizeOptions(*fp.Lint)
		if err != nil {
			return Plan{}, fmt.Errorf("parse plan: lint: %w", err)
		}
		p.Lint = &opts
	}
	if fp.Expect != nil {
		if err := fp.Expect.Validate(); err != nil {
			return Plan{}, fmt.Errorf("parse plan: expect: %w", err)
		}
		if !fp.Expect.Empty() {
			p.Expect = fp.Expect
		}
	}
	if len(fp.ForeignKeys) == 0 {
		return Plan{}, fmt.Errorf("parse plan: %w (foreign_keys is empty)", ErrNoForeignKeys)
	}
	for i, f := range fp.ForeignKeys {
		fk, err := f.toForeignKey()
		if err != nil {
			label := fmt.Sprintf("foreign_keys[%d]", i)
			if f.Name != "" {
				label += " (" + f.Name + ")"
			}
			return Plan{}, fmt.Errorf("parse plan: %s: %w", label, err)
		}
		p.ForeignKeys = append(p.ForeignKeys, fk)
	}
	return p, nil
}

// normalizeOptions accepts severities in any case and refuses unknown rules
// and severities, naming them.
func normalizeOptions(o LintOptions) (LintOptions, error) {
	out := LintOptions{Strict: o.Strict}
	var errs []error
	for id, sev := range o.Severity {
		v, err := ParseSeverity(string(sev))
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %s: %w", id, err))
			continue
		}
		if out.Severity == nil {
			out.Severity = map[string]Severity{}
		}
		out.Severity[id] = v
	}
	if err := errors.Join(errs...); err != nil {
		return out, err
	}
	return out, out.Validate()
}

func (f fileFK) toForeignKey() (ForeignKey, error) {
	fk := ForeignKey{
		OnDelete:          Action(f.OnDelete),
		OnUpdate:          Action(f.OnUpdate),
		Match:             MatchType(f.Match),
		Deferrable:        f.Deferrable,
		InitiallyDeferred: f.InitiallyDeferred,
		Priority:          PriorityCritical,
		Comment:           strings.TrimSpace(f.Comment),
	}
	if f.Priority != nil {
		fk.Priority = *f.Priority
	}
	var err error
	if f.Name == "" {
		return fk, errors.New("name is required")
	}
	if fk.Name, err = ParseIdent(f.Name); err != nil {
		return fk, fmt.Errorf("name: %w", err)
	}
	if f.Table.Name == "" {
		return fk, errors.New("table is required")
	}
	if f.References.Name == "" {
		return fk, errors.New("references is required")
	}
	fk.Table, fk.RefTable = withDefaultSchema(f.Table), withDefaultSchema(f.References)
	if len(f.Columns) == 0 {
		return fk, errors.New("columns are required")
	}
	if fk.Columns, err = parseIdents(f.Columns); err != nil {
		return fk, fmt.Errorf("columns: %w", err)
	}
	// No ref_columns means the referenced table's primary key, as SQL's
	// REFERENCES without a column list; the catalog check resolves it.
	if fk.RefColumns, err = parseIdents(f.RefColumns); err != nil {
		return fk, fmt.Errorf("ref_columns: %w", err)
	}
	return fk, nil
}

func withDefaultSchema(t TableName) TableName {
	if t.Schema == "" {
		t.Schema = DefaultSchema
	}
	return t
}

func parseIdents(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		v, err := ParseIdent(s)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// EncodeYAML renders p in the plan file format so that ParseYAML returns p
// again: identifiers are double-quoted where PostgreSQL would fold or reject
// them bare.
func EncodeYAML(p Plan) ([]byte, error) {
	fp := filePlan{Name: p.Name, Lint: p.Lint, Expect: p.Expect}
	for _, fk := range p.ForeignKeys {
		pr := fk.Priority
		fp.ForeignKeys = append(fp.ForeignKeys, fileFK{
			Name:              QuoteIfNeeded(fk.Name),
			Table:             fk.Table,
			Columns:           quoteIfNeededAll(fk.Columns),
			References:        fk.RefTable,
			RefColumns:        quoteIfNeededAll(fk.RefColumns),
			OnDelete:          fileAction(fk.OnDelete),
			OnUpdate:          fileAction(fk.OnUpdate),
			Match:             fileMatch(fk.Match),
			Deferrable:        fk.Deferrable,
			InitiallyDeferred: fk.InitiallyDeferred,
			Priority:          &pr,
			Comment:           fk.Comment,
		})
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(fp); err != nil {
		return nil, fmt.Errorf("encode plan: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode plan: %w", err)
	}
	return b.Bytes(), nil
}

func quoteIfNeededAll(in []string) []string {
	if len(in) == 0 {
		return nil
	}
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = QuoteIfNeeded(s)
	}
	return out
}
