package plan

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// namedatalen is PostgreSQL's NAMEDATALEN: names hold NAMEDATALEN-1 bytes.
const namedatalen = MaxIdentLen + 1

// DefaultForeignKeyName is the name PostgreSQL gives an unnamed foreign key
// on table over columns: <table>_<col1>_<col2>…_fkey, shortened to 63 bytes
// exactly as PostgreSQL does. It is the name when nothing in the schema
// holds it yet; PostgreSQL would then try _fkey1, _fkey2, … (see
// ChooseForeignKeyName).
func DefaultForeignKeyName(table string, columns []string) string {
	return makeObjectName(table, fkNameAddition(columns), "fkey")
}

// ChooseForeignKeyName is ChooseConstraintName: the first of _fkey, _fkey1, …
// that taken does not report as used.
func ChooseForeignKeyName(table string, columns []string, taken func(string) bool) string {
	addition := fkNameAddition(columns)
	label := "fkey"
	for pass := 1; ; pass++ {
		name := makeObjectName(table, addition, label)
		if !taken(name) {
			return name
		}
		label = "fkey" + strconv.Itoa(pass)
	}
}

// fkNameAddition is ChooseForeignKeyConstraintNameAddition: the column
// names joined with "_", stopping once the text reaches NAMEDATALEN bytes
// (makeObjectName shortens it further).
func fkNameAddition(columns []string) string {
	var b strings.Builder
	for _, c := range columns {
		if b.Len() > 0 {
			b.WriteByte('_')
		}
		// strlcpy(…, NAMEDATALEN): at most 63 bytes, not character-aware.
		if len(c) > MaxIdentLen {
			c = c[:MaxIdentLen]
		}
		b.WriteString(c)
		if b.Len() >= namedatalen {
			break
		}
	}
	return b.String()
}

// makeObjectName is PostgreSQL's makeObjectName with a non-empty name2 and
// label: name1_name2_label in at most 63 bytes, shortening the longer of
// name1 and name2 one byte at a time (name2 on a tie), then clipping each
// to a character boundary.
func makeObjectName(name1, name2, label string) string {
	avail := MaxIdentLen - (len(label) + 1) - 1
	n1, n2 := len(name1), len(name2)
	for n1+n2 > avail {
		if n1 > n2 {
			n1--
		} else {
			n2--
		}
	}
	return clipIdent(name1, n1) + "_" + clipIdent(name2, n2) + "_" + label
}

// TruncateIdent is the name PostgreSQL keeps of an identifier: at most
// MaxIdentLen bytes, never half a character.
func TruncateIdent(s string) string { return clipIdent(s, MaxIdentLen) }

// clipIdent is pg_mbcliplen for UTF-8: s cut to at most n bytes without
// splitting a character.
func clipIdent(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
